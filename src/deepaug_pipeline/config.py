"""Typed, validated configuration: the one place that says which keys exist.

Kedro hands nodes plain dicts (so kedro-mlflow can flatten them into MLflow
params); every node validates its section here once and passes typed objects
inward. Unknown keys are rejected with the offending key named.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from deepaug_pipeline.augment.op_names import OP_NAMES  # the names alone: validating stays free of TensorFlow
from deepaug_pipeline.errors import UserError
from deepaug_pipeline.model_names import check_model_name, check_model_options, wrn_shape


class ConfigError(UserError, ValueError):
    """A configuration value or key is wrong; the message names it."""


def refuse_batch_over_set(batch: int, batch_named: str, set_size: int, set_named: str) -> None:
    """The one rule behind three checks (the config alone, before ingest; the search subset and the final models'
    training set once they exist): Keras would train one short step per epoch, a slip, not a regime."""
    if batch > set_size:
        raise ConfigError(f"{batch_named} exceeds {set_named}: a batch cannot hold more images than the set it is drawn from")


def _takes_numbers(annotation: Any) -> bool:
    """``int``, ``float``, an optional one (``int | None``) or a tuple or list of them."""
    if annotation in (int, float):
        return True
    if get_origin(annotation) is Annotated:  # a constrained number, e.g. ImageSide
        return _takes_numbers(get_args(annotation)[0])
    args = [arg for arg in get_args(annotation) if arg is not type(None) and arg is not Ellipsis]
    return get_origin(annotation) in (Union, UnionType, tuple, list) and bool(args) and all(map(_takes_numbers, args))


class _Strict(BaseModel):
    # Strict about keys, lax about number types: PyYAML reads YAML 1.1, where ``1e-3`` (no dot) is a string, so a
    # numeric string is taken as its number; text that is no number is still refused, naming its key.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no setting means inf or NaN

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_or_false_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads true as 1 and false as 0: ``seed: true`` or ``value_range: [false, true]`` is a slip, not a
        number (numpy's bools too, as an API caller may pass them)."""
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, (bool, np.bool_)) for v in items) and _takes_numbers(cls.model_fields[info.field_name].annotation):
            raise ValueError("takes a number, not true or false")
        return value


def parse_config(model: type[BaseModel], data: Any, where: str, key_kind: str = "parameter key") -> Any:
    """Validate ``data`` against ``model``; raise ConfigError naming ``where.key`` (a ``key_kind``)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("; ".join(validation_problems(exc, where, key_kind))) from None


def validation_problems(exc: ValidationError, where: str, key_kind: str) -> list[str]:
    """pydantic's errors as lines naming each bad entry, e.g. ``bad value for 'policy.sub_policies[1][0].op': ...``."""
    problems = []
    for err in exc.errors():
        key = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown {key_kind} '{key}'")
        else:
            message = err["msg"].removeprefix("Value error, ")  # pydantic's prefix for our own checks
            got = "" if isinstance(err.get("input"), dict) else f" (got {err.get('input')!r})"  # a whole section: too long
            problems.append(f"bad value for '{key}': {message}{got}")
    return problems


# --------------------------------------------------------------------------- ingest
KerasDatasetName = Literal["cifar10", "cifar100", "mnist", "fashion_mnist"]


MIN_IMAGE_SIDE = 8  # the smallest height or width the models and the augmentation ops take
ImageSide = Annotated[int, Field(ge=MIN_IMAGE_SIDE)]


class SourceConfig(_Strict):
    """Where the raw images come from (a catalog entry's arguments)."""

    source: Literal["idx", "npz", "image_folder", "keras"]
    path: str | None = None
    name: KerasDatasetName | None = None
    class_names: list[str] | None = None
    image_size: tuple[ImageSide, ImageSide] | None = Field(
        default=None, description="image_folder only: resize every image to (height, width)"
    )
    color_mode: Literal["grayscale", "rgb"] | None = Field(
        default=None, description="image_folder only: force 1 or 3 channels"
    )

    @field_validator("class_names")
    @classmethod
    def _check_class_names(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        if not names:
            raise ValueError("class_names is empty: list the classes in label order, or leave the key out")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:  # two labels under one name would merge their counts in the summary and the report
            raise ValueError(f"class_names repeats {', '.join(map(repr, repeated))}: each class needs its own name")
        return names

    @model_validator(mode="after")
    def _check_type_fields(self) -> SourceConfig:
        if self.source == "keras":
            if self.name is None:
                raise ValueError("source 'keras' needs 'name' (cifar10, cifar100, mnist, fashion_mnist)")
            if self.path is not None:
                raise ValueError("source 'keras' takes 'name', not 'path'")
        else:
            if not self.path:
                raise ValueError(f"source '{self.source}' needs 'path'")
            if self.name is not None:
                raise ValueError(f"'name' is only for source 'keras', not '{self.source}'")
        if self.source != "image_folder" and (self.image_size or self.color_mode):
            raise ValueError("'image_size' and 'color_mode' are only for source 'image_folder'")
        return self


class IngestConfig(_Strict):
    """How the training split is divided for the search."""

    train_set_size: int = Field(1000, ge=10, description="images in the stratified search subset (the child's training set)")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="held-out share when the source has no test split (npz, image_folder)"
    )
    value_range: tuple[float, float] | None = Field(
        None, description="the raw pixel values' range, mapped onto 0-255; null: uint8 as is, floats in [0, 1]"
    )

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        return refuse_moved_keys(data, {"validation_sample_size": "search.child.validation_sample_size"})

    @model_validator(mode="after")
    def _check(self) -> IngestConfig:
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range {list(self.value_range)} must be [low, high] with low < high")
        return self


# Checked with the config, so a typo is refused before ingest (ModelConfigError is a ValueError: pydantic reports it).
ModelName = Annotated[str, AfterValidator(check_model_name)]


def _options_of_model(options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """``model_options`` the ``model`` beside it takes (``model`` is declared first, so it is validated first)."""
    if "model" in info.data:  # a bad model name is its own error
        check_model_options(info.data["model"], options)
    return options


# --------------------------------------------------------------------------- search
DEFAULT_ITERATIONS = {"retrain": 20, "density": 200}

# DeepAugment's flat names for what is now ``search.child``: its notebook config uses them (api.py), and trial logs
# written before the child had its own section recorded them (``search_result_defining`` maps them).
DEEPAUGMENT_CHILD_KEYS = {
    "model": "model", "model_options": "model_options", "child_epochs": "epochs",
    "child_first_train_epochs": "first_train_epochs", "child_batch_size": "batch_size", "child_optimizer": "optimizer",
    "child_learning_rate": "learning_rate", "child_schedule": "schedule", "reward_epochs": "reward_epochs",
    "opt_last_n_epochs": "last_n_epochs", "overfit_gap": "overfit_gap", "density_images": "density_images",
    "density_draws": "density_draws",
}  # fmt: skip


def refuse_moved_keys(data: Any, moved: dict[str, str]) -> Any:
    """A config of an older version names a key where it no longer lives: say where it went, not just "unknown"."""
    if isinstance(data, dict):
        found = [f"'{key}' is now '{moved[key]}'" for key in data if key in moved]
        if found:
            raise ValueError("moved keys: " + "; ".join(found))
    return data


MIN_VALIDATION_SAMPLE = 10  # images in a seed's validation sample, at least


class ChildConfig(_Strict):
    """The child each trial trains, the validation sample it is scored on, and how its reward is read."""

    model: ModelName = "wrn_10_1"
    model_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(60, ge=1)
    first_train_epochs: int = Field(0, ge=0, description="pre-train each seed's child without augmentation first")
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adam", "sgd", "rmsprop"] = "sgd"
    learning_rate: float = Field(0.02, gt=0)
    schedule: Literal["constant", "cosine"] = "cosine"
    validation_sample_size: int = Field(
        20000, ge=MIN_VALIDATION_SAMPLE, description="at most this many images of the seed validation pool in each seed's validation sample "
        "(the whole pool when it holds no more)"
    )  # fmt: skip
    validation_samples: Literal["overlapping", "disjoint"] = Field(
        "overlapping", description="overlapping: an independent draw per seed, so seeds share images and the pool's own "
        "error, which the spread between seeds does not show (a few % of the SE, validation_noise.json); disjoint: each "
        "seed its own part of the pool while seeds × size fits in it (beyond that the parts wrap round, and the search "
        "warns)"
    )  # fmt: skip
    reward_epochs: Literal["last", "best_non_overfit"] = Field(
        "last", description="last: mean of the last K epochs; best_non_overfit: DeepAugment's K best epochs under overfit_gap"
    )
    last_n_epochs: int = Field(3, ge=1, description="K, the epochs the reward averages")
    overfit_gap: float = Field(0.10, ge=0.0, le=1.0, description="best_non_overfit: an epoch counts if train - val accuracy <= this")
    density_images: int = Field(1000, ge=10, description="density reward: held-out images each trained child is scored on")
    density_draws: int = Field(2, ge=1, description="density reward: augmentation draws per held-out image")

    _check_model_options = field_validator("model_options")(_options_of_model)

    @model_validator(mode="after")
    def _check(self) -> ChildConfig:
        if self.last_n_epochs > self.epochs:
            raise ValueError(f"last_n_epochs={self.last_n_epochs} exceeds epochs={self.epochs}")
        return self


class SearchConfig(_Strict):
    """The Bayesian search loop; ``child`` is what each trial trains."""

    method: Literal["bayesian", "random"] = "bayesian"
    reward: Literal["retrain", "density"] = Field(
        "retrain", description="retrain: train the child per policy (DeepAugment); density: score the policy on the "
        "base's trained children, without retraining (Fast AutoAugment's density matching)"
    )
    iterations: int | None = Field(
        None, ge=1, description="policy trials, not counting the base's fits; null: 20 under retrain, 200 under density"
    )
    opt_initial_points: int = Field(10, ge=1, description="random points before the surrogate takes over")
    surrogate: Literal["RF", "ET", "GP"] = "RF"
    acquisition: Literal["EI", "PI", "LCB", "gp_hedge"] = "EI"
    ops: list[str] | None = Field(None, description="searchable op names; default identity + DeepAugment's 20 (colour ops drop out for grayscale)")
    sub_policies: int = Field(5, ge=1, le=25)
    ops_per_sub_policy: int = Field(2, ge=1, le=4)
    per_op_probability: bool = False
    p_none: float = Field(0.2, ge=0.0, lt=1.0)
    base_augmentation: Literal["auto", "standard", "crop", "none"] = Field(
        "auto", description="applied before every policy; auto measures none, crop and crop + flip and takes the best"
    )
    noise_seeds: int = Field(3, ge=2, description="seeds the base alone is trained under: its spread is the noise floor")
    screen_ops: bool = Field(
        False, description="before the optimiser, try each op alone at two magnitudes against the base and drop the "
        "ops that hurt beyond 2 SE at both"
    )
    reevaluate_top: int = Field(5, ge=0, description="top policies re-trained on fresh seeds, paired with the base")
    reevaluate_seeds: int = Field(3, ge=2, description="fresh seeds per re-evaluated policy")
    reevaluate_stop_early: bool = Field(
        True, description="stop re-training a policy once no result on its remaining seeds could take its paired gain "
        "beyond 2 SE (the same policies are accepted, with fewer fits)"
    )
    child: ChildConfig = ChildConfig()
    top_k: int = Field(20, ge=1)
    combine_top: int = Field(5, ge=1, description="best_policy.json combines at most this many accepted policies")
    fresh_start: bool = Field(False, description="keep the existing trial log under a new name (whatever config wrote it) and start over")
    track_sample_grids: bool = True
    executor: Literal["local", "dask"] = "local"
    n_workers: int = Field(2, ge=1, description="dask: LocalCluster worker processes (ignored with an address)")
    threads_per_worker: int = Field(1, ge=1, description="dask: threads per worker, and TF threads in each")
    address: str | None = Field(None, description="dask: an existing scheduler, e.g. tcp://host:8786")

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        return refuse_moved_keys(data, {key: f"search.child.{child_key}" for key, child_key in DEEPAUGMENT_CHILD_KEYS.items()})

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.reward == "density" and self.child.density_images > self.child.validation_sample_size:
            raise ValueError(
                f"child.density_images={self.child.density_images} exceeds child.validation_sample_size="
                f"{self.child.validation_sample_size}: density scores a part of each seed's validation sample"
            )
        if self.ops is not None:
            unknown = [o for o in self.ops if o not in OP_NAMES]
            if unknown:
                raise ValueError(f"unknown op(s) {unknown} in 'ops'")
            repeated = sorted({o for o in self.ops if self.ops.count(o) > 1})
            if repeated:
                raise ValueError(f"'ops' lists {', '.join(map(repr, repeated))} more than once")
            if all(o == "identity" for o in self.ops):
                raise ValueError(f"'ops' {self.ops} holds no op to search: list ops besides identity, or null for the default")
        if self.address is not None and not self.address.strip():
            raise ValueError("'address' is empty: a Dask scheduler's address (tcp://host:8786), or null for a local cluster")
        if self.address is not None and self.executor != "dask":  # the search would run here, ignoring it
            raise ValueError(f"'address' is {self.address!r} but 'executor' is 'local': set executor: dask to run the "
                             "trials on that scheduler, or remove the address")  # fmt: skip
        return self

    @property
    def trial_log_name(self) -> str:
        """bayesian, random, bayesian-density, ...: a search under each reward keeps its own log, side by side."""
        return self.method if self.reward == "retrain" else f"{self.method}-{self.reward}"

    @property
    def n_seeds(self) -> int:
        """Seed indices a search trains: 0 .. noise_seeds - 1 for the base (seed 0 for the trials too), then the fresh
        re-evaluation seeds."""
        return self.noise_seeds + self.reevaluate_seeds

    @property
    def n_iterations(self) -> int:
        """Policy trials: a density trial costs forward passes only, so it gets ten times as many by default."""
        if self.iterations is not None:
            return self.iterations
        return DEFAULT_ITERATIONS[self.reward]

    @property
    def random_only(self) -> str | None:
        """Why a Bayesian search of this budget never leaves its random phase, or None."""
        if self.method != "bayesian" or self.n_iterations > self.opt_initial_points:
            return None
        return (f"search.iterations={self.n_iterations} is not above search.opt_initial_points={self.opt_initial_points}: "
                "every trial is drawn at random and the surrogate never proposes one, so this Bayesian search is a "
                "random search; raise iterations or lower opt_initial_points")  # fmt: skip

    @property
    def density_screen_warning(self) -> str | None:
        """Why the op screen under the density reward leaves (almost) nothing to search, or None."""
        if not (self.screen_ops and self.reward == "density"):
            return None
        return ("search.screen_ops under search.reward=density drops nearly every op (18 of 19 in one search on the "
                "embedded Fashion-MNIST, benchmarks/results/density_screen_search.json): the density reward scores any "
                "shift of the images away from what the base's children saw as a loss, so almost every op alone scores "
                "below the base beyond 2 SE. Leave screen_ops off under density, or screen under search.reward=retrain")  # fmt: skip

    @property
    def warnings(self) -> list[str]:
        """What this config does that its keys do not say, for the search to log before its first fit."""
        return [warning for warning in (self.random_only, self.density_screen_warning) if warning]

    def result_defining(self) -> dict[str, Any]:
        """The keys that change what a fit computes (the trial log's fingerprint); see ``search_result_defining``."""
        return search_result_defining(self.model_dump())


# Budget and display: raising ``iterations``, ``reevaluate_top`` or ``reevaluate_seeds`` resumes the same log.
SEARCH_BUDGET_KEYS = frozenset({"iterations", "top_k", "combine_top", "fresh_start", "track_sample_grids", "reevaluate_top",
                                "reevaluate_seeds", "reevaluate_stop_early", "executor", "n_workers", "threads_per_worker", "address"})  # fmt: skip


def search_result_defining(search: dict[str, Any]) -> dict[str, Any]:
    """The search keys that change what a fit computes. Keys that change nothing in this config are left out: the
    density keys under retrain, ``screen_ops`` when off. It takes a search section of any version (a trial log's
    header too: DeepAugment's flat child keys are moved into ``child``), so a log that differs from today's config
    only in these keys (absent, or recorded by a version that wrote them) compares equal and resumes; any other key
    still counts. ``child.overfit_gap`` counts only under ``reward_epochs: best_non_overfit``, the rule that reads it."""
    flat = {k: v for k, v in search.items() if k not in DEEPAUGMENT_CHILD_KEYS}
    child = {**{DEEPAUGMENT_CHILD_KEYS[k]: v for k, v in search.items() if k in DEEPAUGMENT_CHILD_KEYS}, **flat.pop("child", {})}
    unused = set(SEARCH_BUDGET_KEYS)
    if search.get("reward", "retrain") != "density":
        unused.add("reward")
        child = {k: v for k, v in child.items() if k not in ("density_images", "density_draws")}
    if not search.get("screen_ops", False):
        unused.add("screen_ops")
    if child.get("reward_epochs", "last") != "best_non_overfit":  # only that rule reads the gap
        child = {k: v for k, v in child.items() if k != "overfit_gap"}
    child.setdefault("validation_samples", "overlapping")  # a log written before the choice drew them independently
    return {**{k: v for k, v in flat.items() if k not in unused}, "child": child}


def canonical_search_config(config: dict) -> dict:
    """A search log's config, of this version or an older one, in the form the fingerprint is taken of: the search
    keys that change a fit (``search_result_defining``). Older versions also recorded the ingest section: its
    ``validation_sample_size`` is now the child's; the rest made the data, whose content the log records."""
    search = config.get("search", {})
    moved = (config.get("ingest") or {}).get("validation_sample_size")
    if moved is not None:
        search = {**search, "child": {"validation_sample_size": moved, **search.get("child", {})}}
    return {**{k: v for k, v in config.items() if k != "ingest"}, "search": search_result_defining(search)}


# --------------------------------------------------------------------------- evaluate
SGD_MOMENTUM = 0.9  # Nesterov momentum under sgd: the child's always, the final model's by default
Strategy = Literal["none", "standard", "standard+found", "standard+randaugment", "standard+trivialaugment"]


class EvaluateConfig(_Strict):
    """The final comparison: a larger model trained per strategy and seed, scored on the untouched test split (or a
    stratified sample of it)."""

    strategies: list[Strategy] = Field(
        default_factory=lambda: ["none", "standard", "standard+found", "standard+randaugment", "standard+trivialaugment"]
    )
    seeds: int = Field(2, ge=1)
    model: ModelName = "wrn_10_1"
    model_options: dict[str, Any] = Field(default_factory=lambda: {"dropout": 0.0, "weight_decay": 0.0005})
    train_size: int | None = Field(4000, ge=10, description="stratified subset of TRAIN; null = all of it")
    validation_size: int = Field(1000, ge=10, description="held-out TRAIN images for the learning curves (never test)")
    test_size: int | None = Field(None, ge=10, description="stratified sample of the test split to score on; null = all of it")
    epochs: int = Field(120, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adam", "sgd", "rmsprop"] = "sgd"
    learning_rate: float = Field(0.05, gt=0)
    momentum: float = Field(SGD_MOMENTUM, ge=0, lt=1, description="sgd's Nesterov momentum; adam and rmsprop take none")
    schedule: Literal["constant", "cosine"] = "cosine"
    randaugment_n: int = Field(2, ge=1)
    randaugment_m: float = Field(9.0, ge=0, le=10)
    fresh_start: bool = False

    _check_model_options = field_validator("model_options")(_options_of_model)

    @model_validator(mode="before")
    @classmethod
    def _default_options_for_the_model(cls, data: Any) -> Any:
        """The default model_options are the WRN's (dropout, weight decay): another model without options of its
        own gets none, instead of a refusal of options nobody wrote."""
        if isinstance(data, dict) and "model_options" not in data and wrn_shape(str(data.get("model", "wrn_10_1"))) is None:
            return {**data, "model_options": {}}
        return data

    @model_validator(mode="after")
    def _check(self) -> EvaluateConfig:
        if not self.strategies:
            raise ValueError("'strategies' is empty: name at least one")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"'strategies' lists a strategy twice: {self.strategies}")
        return self

    def result_defining(self) -> dict[str, Any]:
        """The keys that change what a final run computes (the evaluation log's fingerprint)."""
        return evaluate_result_defining(self.model_dump())


def evaluate_result_defining(evaluate: dict[str, Any]) -> dict[str, Any]:
    """The evaluate keys that change a final run, of this version or an older one (an evaluation log's header too):
    budget and display keys are left out; ``test_size`` at its default, so logs written before the key existed still
    resume; ``momentum`` unless the optimizer is sgd, the only one that reads it."""
    unused = {"fresh_start", "strategies", "seeds"}
    if evaluate.get("test_size") is None:
        unused.add("test_size")
    if evaluate.get("optimizer", "sgd") != "sgd":
        unused.add("momentum")
    return {k: v for k, v in evaluate.items() if k not in unused}


def canonical_evaluation_config(config: dict) -> dict:
    """An evaluation log's config in the form the fingerprint is taken of (``evaluate_result_defining``)."""
    return {**config, "evaluate": evaluate_result_defining(config.get("evaluate", {}))}


# --------------------------------------------------------------------------- whole parameter tree
class ProjectParams(_Strict):
    """Every top-level parameter key the project knows; validated before a run starts."""

    seed: int = Field(42, ge=0, description="the one seed; split into named streams (data split, optimizer, trials)")
    ingest: IngestConfig = IngestConfig()
    search: SearchConfig = SearchConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    def child_trains_as_final(self) -> bool:
        """Whether the search's child trains as evaluate trains the final model (model and its options as written,
        optimizer, learning rate and schedule, momentum, epochs with no pre-training, batch, number of images), so that
        a policy's reward is read in the regime its worth is judged in (``conf/final_regime``)."""
        child, final = self.search.child, self.evaluate
        fields = ("model", "model_options", "epochs", "batch_size", "optimizer", "learning_rate", "schedule")
        return (all(getattr(child, f) == getattr(final, f) for f in fields) and child.first_train_epochs == 0
                and (final.optimizer != "sgd" or final.momentum == SGD_MOMENTUM) and self.ingest.train_set_size == final.train_size)  # fmt: skip

    @model_validator(mode="after")
    def _batches_fit_their_sets(self) -> ProjectParams:
        """A batch larger than the set it is drawn from is known from the config alone, so it is refused before ingest
        (on a user's image folder, minutes). Where the sets are made, their real sizes are checked again."""
        for batch_key, batch, set_key, set_size in (
            ("search.child.batch_size", self.search.child.batch_size, "ingest.train_set_size", self.ingest.train_set_size),
            ("evaluate.batch_size", self.evaluate.batch_size, "evaluate.train_size", self.evaluate.train_size),
        ):  # fmt: skip
            if set_size is not None:
                refuse_batch_over_set(batch, f"'parameters.{batch_key}' ({batch})", set_size, f"'parameters.{set_key}' ({set_size})")
        return self


def validate_params(params: dict) -> ProjectParams:
    """Validate the whole parameter tree, naming the first bad key."""
    return parse_config(ProjectParams, params, "parameters")
