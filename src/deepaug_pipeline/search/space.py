"""Policy ↔ scikit-optimize point, and the optimiser: the one module that uses scikit-optimize (archived upstream).

Default: 5 sub-policies × 2 × (op, magnitude) = 20 dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import sklearn
from skopt import Optimizer
from skopt.learning import ExtraTreesRegressor, RandomForestRegressor
from skopt.space import Categorical, Real

from deepaug_pipeline.augment import ops as ops_lib
from deepaug_pipeline.augment.policy import Operation, Policy, SubPolicy
from deepaug_pipeline.config import SearchConfig
from deepaug_pipeline.seeding import stream_seed


def to_python(value):
    """skopt returns numpy scalars (np.str_, np.int64, np.float64): make them JSON- and MLflow-safe."""
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class PolicySpace:
    """The searchable space of policies."""

    op_names: tuple[str, ...]
    sub_policies: int = 5
    ops_per_sub_policy: int = 2
    per_op_probability: bool = False
    p_none: float = 0.2

    @property
    def fields(self) -> tuple[str, ...]:
        return ("op", "magnitude", "probability") if self.per_op_probability else ("op", "magnitude")

    def dimension_names(self) -> list[str]:
        """``s<sub-policy>_<op>_<field>``: MLflow lists a trial's params sorted, and so each op's together."""
        return [
            f"s{k + 1}_{j + 1}_{f}"
            for k in range(self.sub_policies)
            for j in range(self.ops_per_sub_policy)
            for f in self.fields
        ]

    def dimensions(self) -> list:
        dims = []
        for name in self.dimension_names():
            dims.append(Categorical(list(self.op_names), name=name) if "_op" in name else Real(0.0, 1.0, name=name))
        return dims

    def decode(self, point) -> Policy:
        values = [to_python(v) for v in point]
        width = len(self.fields)
        subs, i = [], 0
        for _ in range(self.sub_policies):
            operations = []
            for _ in range(self.ops_per_sub_policy):
                chunk = values[i : i + width]
                prob = float(chunk[2]) if self.per_op_probability else 1.0
                operations.append(Operation(str(chunk[0]), float(chunk[1]), prob))
                i += width
            subs.append(SubPolicy(tuple(operations)))
        return Policy(tuple(subs), self.p_none)

    def encode(self, policy: Policy) -> list:
        point = []
        for sub in policy.sub_policies:
            for op in sub.operations:
                point += [op.op, op.magnitude] + ([op.probability] if self.per_op_probability else [])
        return point

    def op_indices(self) -> tuple[int, ...]:
        return tuple(ops_lib.OP_INDEX[n] for n in self.op_names)

    def single_op(self, op: str, magnitude: float) -> Policy:
        """``op`` alone at ``magnitude`` in every sub-policy (the rest identity): the op screen's policy, the same
        shape as any policy of this space so the traced child graph takes it as data."""
        rest = tuple(Operation("identity", 0.0) for _ in range(self.ops_per_sub_policy - 1))
        sub = SubPolicy((Operation(op, float(magnitude)), *rest))
        return Policy(tuple(sub for _ in range(self.sub_policies)), self.p_none)

    def without(self, ops: tuple[str, ...]) -> PolicySpace:
        return replace(self, op_names=tuple(o for o in self.op_names if o not in ops))

    def no_augmentation(self) -> Policy:
        """Trial 0, the baseline: same tensor shape as any policy of this space, never applied."""
        sub = SubPolicy(tuple(Operation("identity", 0.0) for _ in range(self.ops_per_sub_policy)))
        return Policy(tuple(sub for _ in range(self.sub_policies)), p_none=1.0)


class _Float32Input:
    """Each tell refits the forest and predicts the acquisition on 10,000 candidate points; scikit-learn's trees work
    in float32 and converted the float64 matrix once per tree (100 times). Converting once per call gives the same
    predictions, and the same points, in half the time (benchmarks/bench_trial.py, density_trial)."""

    def fit(self, X, y):
        return super().fit(np.asarray(X, np.float32), y)

    def predict(self, X, return_std=False):
        return super().predict(np.asarray(X, np.float32), return_std)


class _Float32Forest(_Float32Input, RandomForestRegressor):
    pass


class _Float32ExtraTrees(_Float32Input, ExtraTreesRegressor):
    pass


class _PolicyOptimizer(Optimizer):
    """skopt's optimiser, made a function of what it was told, so a resumed search asks what an uninterrupted one
    asked. skopt draws its random points, and the candidates its surrogate picks from, from one stream that telling
    it the logged trials does not advance: a search resumed in the random phase repeated its first trials.

    A trial of the random phase draws its point from its own id, and each tell draws the candidates from the number
    of points told. (Telling k points at once fits the surrogate as the k-th of k single tells did: skopt refits on
    every point each time. gp_hedge alone keeps a history of its own, which a resume does not replay.)"""

    def __init__(self, *args, stream: int, **kwargs) -> None:
        super().__init__(*args, random_state=stream, **kwargs)
        self._stream = stream

    def ask_for(self, trial_ids: list[int], pending: list[list] = ()) -> list[list]:
        """The points of these trials; several beyond the random phase at once by skopt's constant liar, which
        also stands in for the results of ``pending`` points (trials still training on other workers): asked alone,
        skopt proposes its next point from what it was told, blind to points already handed out."""
        points = {i: self.space.rvs(random_state=stream_seed(self._stream, "trial", i))[0] for i in trial_ids if i <= self.n_initial_points_}
        fitted = [i for i in trial_ids if i not in points]
        if fitted:
            asker: Optimizer = self
            if pending:  # a copy told the pending points at the lie cl_min uses; this optimiser is told only results
                asker = self.copy(random_state=stream_seed(self._stream, "pending", len(self.Xi), len(pending)))
                asker.tell([list(p) for p in pending], [min(self.yi, default=0.0)] * len(pending))
            asked = asker.ask(n_points=len(fitted), strategy="cl_min") if len(fitted) > 1 else [asker.ask()]
            points.update(zip(fitted, asked))
        return [points[i] for i in trial_ids]

    def _tell(self, x, y, fit=True):
        self.rng = np.random.RandomState(stream_seed(self._stream, "told", len(self.Xi) + (len(y) if np.ndim(y) else 1)))
        # Points and rewards are finite by construction (a failed fit scores 0): skip the per-tree finiteness scans.
        with sklearn.config_context(assume_finite=True):
            return super()._tell(x, y, fit)


def policy_optimizer(space: PolicySpace, cfg: SearchConfig, seed: int) -> Optimizer:
    """RF + EI by default (as DeepAugment). ``method: random`` never leaves the initial random phase
    (skopt's own "dummy" estimator fails on scikit-learn 1.9), so both methods share one sampler."""
    random_only = cfg.method == "random"
    optimizer = _PolicyOptimizer(
        space.dimensions(),
        base_estimator=cfg.surrogate,
        n_initial_points=2**31 - 1 if random_only else cfg.opt_initial_points,
        initial_point_generator="random",
        acq_func=cfg.acquisition,
        stream=stream_seed(seed, "optimizer", cfg.method),
    )
    # skopt built the forest from its name (drawing its seed from the optimiser's stream); the same forest, fed float32.
    for forest, faster in ((RandomForestRegressor, _Float32Forest), (ExtraTreesRegressor, _Float32ExtraTrees)):
        if type(optimizer.base_estimator_) is forest:
            optimizer.base_estimator_ = faster(**optimizer.base_estimator_.get_params())
    return optimizer
