"""DeepAugment's notebook interface, on the same nodes and library code as ``kedro run --pipelines=search``.

    from deepaug_pipeline import DeepAugment
    deepaug = DeepAugment(images, labels, config={"child_epochs": 10})
    best_policies = deepaug.optimize(300)
    policy = deepaug.best_policy()          # .as_layer(), .save(path), .apply(images)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepaug_pipeline.augment.policy import Policy
from deepaug_pipeline.config import (
    DEEPAUGMENT_CHILD_KEYS,
    ConfigError,
    IngestConfig,
    SearchConfig,
    SourceConfig,
    parse_config,
    validate_params,
)
from deepaug_pipeline.data import ImageSource, LabelledImages
from deepaug_pipeline.ingest import DataValidationError, load_source, split_dataset, validate_source
from deepaug_pipeline.run_log import TrialLogMismatch, TrialLogStore, read_log
from deepaug_pipeline.search import results
from deepaug_pipeline.search.records import SearchResult
from deepaug_pipeline.search.run import check_sizes, run_search


def load_dataset(source: str, **options: Any) -> ImageSource:
    """Load and validate an image dataset as the ingest pipeline does: ``source`` is ``idx``, ``image_folder``,
    ``keras`` or ``npz`` and ``options`` the keys of ``raw_images`` in the catalog (``path``, ``name``, ...).
    Returns the train and test splits (``.train.x``, ``.train.y``, ``.test``) and ``.class_names``."""
    return validate_source(load_source(parse_config(SourceConfig, {"source": source, **options}, "source")))


# DeepAugment's method names, kept for old notebooks.
_METHODS = {"bayesian_optimization": "bayesian", "random_search": "random", "bayesian": "bayesian", "random": "random"}


def split_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Flat seed-style keys (DeepAugment's: ``child_epochs``, ``opt_last_n_epochs``, ...) → the project's parameter
    tree (``seed``, ``ingest``, ``search`` with its ``child``), validated."""
    params: dict[str, Any] = {"ingest": {}, "search": {"child": {}}}
    child_keys = {**DEEPAUGMENT_CHILD_KEYS, "validation_sample_size": "validation_sample_size"}
    # A parameter's key in the project's tree → the key it was given as here, or would be (a default named in an error
    # beside a given key, e.g. a batch over the subset's size).
    given_as: dict[str, str] = {f"parameters.ingest.{k}": f"config.{k}" for k in IngestConfig.model_fields}
    given_as.update({f"parameters.search.child.{child}": f"config.{flat}" for flat, child in child_keys.items()})
    given_as["parameters"] = "config"  # a check across sections names the whole tree
    for key, value in (config or {}).items():
        if key == "seed":
            params["seed"] = value
            given_as["parameters.seed"] = "config.seed"
        elif key == "iterations":  # optimize(n) sets it: a config value would be overridden without a word
            raise ConfigError("'config.iterations' is not a config key here: pass the number of trials to optimize(n)")
        elif key == "method":
            if not isinstance(value, str) or value not in _METHODS:
                raise ConfigError(f"bad value for 'config.method': {value!r} (bayesian_optimization, random_search)")
            params["search"]["method"] = _METHODS[value]
        elif key in IngestConfig.model_fields:
            params["ingest"][key] = value
            given_as[f"parameters.ingest.{key}"] = f"config.{key}"
        elif key in child_keys or key == "child":  # DeepAugment's flat names, or the project's own nested form
            if key == "child" and not isinstance(value, dict):
                raise ConfigError(f"bad value for 'config.child': a dict of search.child keys, got {type(value).__name__}")
            given = value if key == "child" else {child_keys[key]: value}
            twice = sorted(set(given) & set(params["search"]["child"]))
            if twice:
                raise ConfigError(f"config sets search.child.{twice[0]} twice (a flat DeepAugment key and 'child'): keep one")
            params["search"]["child"].update(given)
            given_as.update({f"parameters.search.child.{k}": f"config.{key}" + (f".{k}" if key == "child" else "") for k in given})
        elif key in SearchConfig.model_fields:
            params["search"][key] = value
            given_as[f"parameters.search.{key}"] = f"config.{key}"
        else:
            raise ConfigError(f"unknown parameter key 'config.{key}'")
    try:
        validate_params(params)
    except ConfigError as exc:  # name the keys as the caller wrote them, not as the pipeline's parameters
        message = str(exc)
        for project_key, key in given_as.items():
            message = message.replace(f"'{project_key}'", f"'{key}'")
        raise ConfigError(message) from None
    return params


class DeepAugment:
    """Find augmentation policies for ``images`` (N, H, W[, C]) with integer ``labels`` (N,)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        config: dict[str, Any] | None = None,
        workdir: str | Path = "deepaug_output",
        class_names: list[str] | None = None,
    ) -> None:
        if images is None or labels is None:
            raise DataValidationError(f"DeepAugment: {'images' if images is None else 'labels'} is None; pass arrays of "
                                      "images (N, H, W[, C]) and integer labels (N,)")  # fmt: skip
        self.params = split_config(config)
        self.seed = int(self.params.get("seed", 42))
        self.workdir = Path(workdir)
        source = ImageSource(LabelledImages(np.asarray(images), np.asarray(labels)), None, class_names, origin="arrays")
        ingest = parse_config(IngestConfig, self.params["ingest"], "ingest")
        splits = split_dataset(validate_source(source, "images", ingest.value_range), ingest, self.seed)
        self.search_subset, self.seed_validation_pool, self.test_set = splits.search_subset, splits.seed_validation_pool, splits.test
        self.dataset_summary = splits.summary()
        search = parse_config(SearchConfig, self.params["search"], "search")
        check_sizes(search, len(self.search_subset), len(self.seed_validation_pool))  # now, not at optimize()
        self._result: SearchResult | None = None
        self._search: SearchConfig | None = None

    def optimize(self, iterations: int) -> pd.DataFrame:
        """Run (or resume) ``iterations`` policy trials, then re-evaluate the best; returns the top policies."""
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
            raise ConfigError(f"optimize(iterations): a whole number of policy trials, at least 1; got {iterations!r}")
        search = parse_config(SearchConfig, {**self.params["search"], "iterations": int(iterations)}, "search")
        # Until this search finishes, the last one's results no longer describe the trial log it goes on writing.
        self._result = self._search = None
        store, asked_at = TrialLogStore(self.workdir / "trial_logs"), time.time()
        try:
            self._result = run_search(
                self.search_subset, self.seed_validation_pool, self.dataset_summary, store, search, self.seed
            )  # fmt: skip
            self._search = search
        except TrialLogMismatch as exc:  # the library names the pipeline's key; here it is a config key
            raise TrialLogMismatch(f"{exc} Here: config={{..., 'fresh_start': True}}, or another workdir.", exc.section) from None
        finally:
            # A fresh start is this object's first search: once it has started its log, a later optimize() goes on
            # with that log (a call refused before it got there, a busy log say, leaves the request standing).
            log_path = store.path_for(search.trial_log_name)
            if search.fresh_start and log_path.is_file() and read_log(log_path)[0].get("created", 0.0) >= asked_at:
                self.params["search"]["fresh_start"] = False
        return results.top_policies_table(self.top_policies())

    @property
    def trials(self) -> pd.DataFrame:
        """Every fit so far: the base alone under the noise seeds, the policy trials, the re-evaluations."""
        return results.trials_table(self._require())

    @property
    def verdict(self) -> str:
        """The search's answer in one sentence, e.g. "no policy beat crop + flip beyond noise"."""
        return results.verdict(self._require())

    def top_policies(self) -> dict:
        return results.top_policies(self._require(), self._search.top_k)

    def best_policy(self) -> Policy:
        """The accepted policies' sub-policies combined (AutoAugment's final policy), ready to use on top of the base
        augmentation the search chose (``best_policy().metadata["base_augmentation"]``); empty if none was accepted."""
        return Policy.from_dict(results.best_combined_policy(self._require(), self._search.combine_top))

    def _require(self) -> SearchResult:
        if self._result is None:
            raise RuntimeError(f"no finished search: call optimize(n) (it resumes from the trial log in {self.workdir})")
        return self._result
