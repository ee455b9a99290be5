"""Policies: K sub-policies of (op, magnitude[, probability]); JSON schema; per-image application.

Applied per image, per call: with probability ``p_none`` an image is left as it is; otherwise one
sub-policy is drawn uniformly and its ops are applied in order (each with its probability, 1 by default).
A policy with no sub-policies is the identity: what the search writes when no policy beat the base beyond noise.
In graph code a policy is data (``PolicyTensors``), so changing the policy never retraces anything.
"""

from __future__ import annotations

import functools
import json
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import tensorflow as tf
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from deepaug_pipeline.augment import imaging, kernels, ops as ops_lib
from deepaug_pipeline.augment.baselines import BASES, base_augment, base_params
from deepaug_pipeline.config import validation_problems
from deepaug_pipeline.errors import UserError

SCHEMA_VERSION = 1
DEFAULT_P_NONE = 0.2


class PolicyError(UserError, ValueError):
    """A policy (or its JSON) is malformed; the message names the bad entry."""


# --------------------------------------------------------------------------- the JSON schema
def _known_op(name: str) -> str:
    if name not in ops_lib.OP_INDEX:
        raise PolicyError(f"unknown op {name!r}; known ops: {', '.join(ops_lib.OP_NAMES)}")
    return name


# Strict: JSON numbers only (no "0.5", no true), finite, in [0, 1].
UnitInterval = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class OperationJSON(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    op: Annotated[str, AfterValidator(_known_op)]
    magnitude: UnitInterval
    probability: UnitInterval = 1.0


def _known_base(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    base = (metadata or {}).get("base_augmentation")
    if base is not None and (not isinstance(base, str) or base not in BASES):
        raise ValueError(f"base_augmentation {base!r} is not one of {', '.join(BASES)}")
    return metadata


class PolicyJSON(BaseModel):
    """What ``best_policy.json`` holds; an empty ``sub_policies`` list is no augmentation."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    schema_version: Literal[SCHEMA_VERSION]
    p_none: UnitInterval = DEFAULT_P_NONE
    sub_policies: list[Annotated[list[OperationJSON], Field(min_length=1)]]
    metadata: Annotated[dict[str, Any] | None, AfterValidator(_known_base)] = None


@dataclass(frozen=True)
class Operation:
    op: str
    magnitude: float
    probability: float = 1.0

    def __post_init__(self) -> None:  # built by hand too, not only from validated JSON
        _known_op(self.op)
        for name in ("magnitude", "probability"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:  # NaN too
                raise PolicyError(f"{self.op}: {name} must be a number in [0, 1]; got {value!r}")

    def describe(self) -> str:
        prob = "" if self.probability == 1.0 else f" p={self.probability:.2f}"
        return f"{self.op} {self.magnitude:.2f}{prob}"


@dataclass(frozen=True)
class SubPolicy:
    operations: tuple[Operation, ...]

    def describe(self) -> str:
        return " → ".join(op.describe() for op in self.operations)


class PolicyTensors(NamedTuple):
    """A policy as graph data: (K, S) op indices, magnitudes and probabilities, plus p_none."""

    op_ids: tf.Tensor
    magnitudes: tf.Tensor
    probabilities: tf.Tensor
    p_none: tf.Tensor


@dataclass(frozen=True)
class Policy:
    """An augmentation policy. ``Policy.load(path)`` reads what the search writes."""

    sub_policies: tuple[SubPolicy, ...]
    p_none: float = DEFAULT_P_NONE
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_none <= 1.0:
            raise PolicyError(f"p_none must be in [0, 1]; got {self.p_none!r}")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[tuple[str, float]]], p_none: float = DEFAULT_P_NONE) -> Policy:
        """``[[("rotate", 0.5), ("cutout", 0.3)], ...]`` → Policy (validated)."""
        return cls.from_dict(
            {
                "schema_version": SCHEMA_VERSION,
                "p_none": p_none,
                "sub_policies": [[{"op": op, "magnitude": m} for op, m in sub] for sub in pairs],
            }
        )

    @classmethod
    def combine(cls, policies: Iterable[Policy], p_none: float | None = None) -> Policy:
        """Concatenate the sub-policies of several policies (AutoAugment's final policy: top-5 → 25). They keep the
        base augmentation they were found on, which must be one."""
        policies = list(policies)
        if not policies:
            raise PolicyError("combine needs at least one policy")
        bases = {p.metadata.get("base_augmentation") or "none" for p in policies}  # no base recorded: none runs
        if len(bases) > 1:
            raise PolicyError(f"combine: these policies were found on different base augmentations "
                              f"({', '.join(sorted(bases))}); each runs after its own base")  # fmt: skip
        subs = tuple(s for p in policies for s in p.sub_policies)
        base = bases.pop()
        return cls(subs, policies[0].p_none if p_none is None else p_none, {} if base == "none" else {"base_augmentation": base})

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "p_none": self.p_none,
            "sub_policies": [
                [{"op": o.op, "magnitude": o.magnitude, "probability": o.probability} for o in sub.operations]
                for sub in self.sub_policies
            ],
        }
        if self.metadata:
            out["metadata"] = self.metadata
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Policy:
        """Validate a policy dict (``PolicyJSON``), naming every bad entry."""
        try:
            parsed = PolicyJSON.model_validate(data)
        except ValidationError as exc:
            raise PolicyError("; ".join(validation_problems(exc, "policy", "key"))) from None
        subs = tuple(SubPolicy(tuple(Operation(o.op, o.magnitude, o.probability) for o in sub)) for sub in parsed.sub_policies)
        return cls(subs, parsed.p_none, parsed.metadata or {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "policy JSON", rank: int = 0) -> Policy:
        """A policy JSON, or the search's top-policies JSON (then entry ``rank``, 0 = best)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{source}: not valid JSON ({exc})") from None
        try:
            if isinstance(data, dict) and "policies" in data:
                entries = data["policies"]
                if not isinstance(entries, list) or not 0 <= rank < len(entries):
                    raise PolicyError(f"policies: no entry of rank {rank} (it holds {len(entries) if isinstance(entries, list) else 0})")
                policy = cls.from_dict(entries[rank].get("policy") if isinstance(entries[rank], dict) else None)
                # The file names the base the search ran every policy on, once: the policy runs after it.
                base = {"base_augmentation": data["base_augmentation"]} if data.get("base_augmentation") else {}
                return cls.from_dict({**policy.to_dict(), "metadata": {**base, **policy.metadata}})
            return cls.from_dict(data)
        except PolicyError as exc:
            raise PolicyError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path, rank: int = 0) -> Policy:
        """Read ``best_policy.json`` (or any policy JSON), or entry ``rank`` of ``top_policies.json``."""
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"policy file not found: {path}")
        return cls.from_json(path.read_text(), source=str(path), rank=rank)

    # ----------------------------------------------------------------- graph form
    @property
    def ops_per_sub_policy(self) -> int:
        return max((len(s.operations) for s in self.sub_policies), default=1)

    @property
    def is_empty(self) -> bool:
        """No operations at all: applying it leaves every image as it is."""
        return not self.sub_policies

    def op_indices(self) -> tuple[int, ...]:
        """Indices (in ``ops.OPS``) of the ops this policy uses."""
        return tuple(sorted({ops_lib.OP_INDEX[o.op] for s in self.sub_policies for o in s.operations}))

    def tensors(self) -> PolicyTensors:
        """Dense (K, S) arrays; shorter sub-policies are padded with the identity op. An empty policy is one
        identity sub-policy that is never drawn (p_none = 1)."""
        if self.is_empty:
            return Policy((SubPolicy((Operation("identity", 0.0),)),), p_none=1.0).tensors()
        k, s = len(self.sub_policies), self.ops_per_sub_policy
        op_ids = np.full((k, s), ops_lib.IDENTITY, np.int32)
        mags = np.zeros((k, s), np.float32)
        probs = np.ones((k, s), np.float32)
        for i, sub in enumerate(self.sub_policies):
            for j, op in enumerate(sub.operations):
                op_ids[i, j] = ops_lib.OP_INDEX[op.op]
                mags[i, j] = op.magnitude
                probs[i, j] = op.probability
        return PolicyTensors(tf.constant(op_ids), tf.constant(mags), tf.constant(probs), tf.constant(self.p_none, tf.float32))

    def base_tensor(self, with_base: bool = True) -> tf.Tensor | None:
        """The base augmentation it was found on, as ``base_then_policy`` takes it (None: no base, or not asked for)."""
        base = self.metadata.get("base_augmentation") if with_base else None
        return base_params(base) if base else None

    def apply(self, images, seed=None, value_range: tuple[float, float] | None = None, with_base: bool = True) -> tf.Tensor:
        """Augment a batch (uint8, or float in ``value_range``) once, as ``as_layer`` does in training: the search's
        base augmentation first unless ``with_base=False``. Returns the same dtype and range.

        ``seed`` (an int, or an integer tensor: a scalar or a stateless seed of shape [2]) fixes the draws. Without
        one every call draws afresh, inside a ``tf.function`` or a ``tf.data`` map too (a seed drawn in Python there
        would be traced once and repeat on every batch and epoch)."""
        return base_then_policy(images, self.tensors(), self.op_indices(), self.base_tensor(with_base), _stateless_seed(seed),
                                value_range)  # fmt: skip

    def as_layer(self, seed: int | None = None, value_range: tuple[float, float] | None = None, with_base: bool = True):
        """A Keras layer applying this policy in training only (serialisable in ``.keras``); the search's base
        augmentation (``metadata.base_augmentation``) runs first unless ``with_base=False``."""
        from deepaug_pipeline.augment.layer import PolicyAugmentation

        return PolicyAugmentation(self.to_dict(), seed=seed, value_range=value_range, with_base=with_base)

    def map_fn(self, seed: int | None = None, value_range: tuple[float, float] | None = None, with_base: bool = True):
        """A ``tf.data`` map function for batched ``(images, labels...)`` elements (base first, as ``as_layer``).

        Each call takes its own seed from a ``tf.random.Generator``, whose draw is one atomic step, so calls that a
        parallel map (``num_parallel_calls``) runs at once never share their draws. With ``seed``, a sequential map
        is reproducible; a parallel one hands the seeds out in the order its calls happen to run."""
        layer = self.as_layer(seed=seed, value_range=value_range, with_base=with_base)
        seeds = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()

        @tf.autograph.experimental.do_not_convert  # plain graph code: ``rest`` is a static tuple
        def fn(images, *rest):
            out = layer.augment(images, seeds.make_seeds(1)[:, 0])
            return (out, *rest) if rest else out

        return fn

    def describe(self) -> list[str]:
        return [s.describe() for s in self.sub_policies]


# --------------------------------------------------------------------------- graph application
@functools.cache
def _fresh_seeds() -> tf.random.Generator:
    with tf.init_scope():  # made eagerly, even when first asked for while a tf.data map or tf.function is traced
        return tf.random.Generator.from_non_deterministic_state()


def _stateless_seed(seed) -> tf.Tensor:
    """``Policy.apply``'s seed as a stateless seed (int64, shape [2])."""
    if seed is None:  # a generator's draw: fresh on every call, and on every pass of a tf.data map. A random op
        return _fresh_seeds().make_seeds(1)[:, 0]  # would restart its stream each pass once a global seed is set
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.zeros([], tf.int64)])
    if seed.shape.rank != 1 or seed.shape[0] != 2:  # an unknown shape too: a loosely traced function is told to give one
        raise PolicyError(f"seed: an integer or a stateless seed of shape [2]; got shape {seed.shape}")
    return seed


def base_then_policy(images, policy: PolicyTensors, available: Sequence[int] | None, base: tf.Tensor | None,
                     seed: tf.Tensor, value_range: tuple[float, float] | None = None) -> tf.Tensor:  # fmt: skip
    """What training under ``Policy.as_layer`` does to a batch: the base augmentation (a ``base_params`` tensor;
    None for none), then the policy, under ``seed`` (int64, shape [2]), on any dtype in and out. Plain graph code
    (no variables), so ``Policy.apply`` runs inside a ``tf.function`` or a ``tf.data`` map too."""
    images = tf.convert_to_tensor(images)
    s_base, s_policy = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    x = imaging.to_unit(images, value_range)
    if base is not None:
        x = base_augment(x, base, s_base)
    return imaging.from_unit(apply_policy(x, policy, s_policy, available), images.dtype, value_range)


def apply_sub_policies(
    images: tf.Tensor, policy: PolicyTensors, chosen: tf.Tensor, seed: tf.Tensor, available: Sequence[int] | None = None
) -> tf.Tensor:
    """Apply sub-policy ``chosen[i]`` to image i (−1: leave it); images float32 [0, 1].

    ``available``: the op indices the policy may hold (see ``ops.apply_ops``); all ops when None.
    """
    rng = kernels.Rng(seed)
    n = tf.shape(images)[0]
    active = chosen >= 0
    sub = tf.maximum(chosen, 0)
    for j in range(int(policy.op_ids.shape[1])):
        op = tf.gather(policy.op_ids[:, j], sub)
        mag = tf.gather(policy.magnitudes[:, j], sub)
        fire = active & (rng.uniform([n]) < tf.gather(policy.probabilities[:, j], sub))
        images = ops_lib.apply_ops(images, tf.where(fire, op, ops_lib.IDENTITY), mag, rng.seed(), available)
    return images


def apply_policy(
    images: tf.Tensor, policy: PolicyTensors, seed: tf.Tensor, available: Sequence[int] | None = None
) -> tf.Tensor:
    """Per image: none with probability p_none, else one uniformly drawn sub-policy. Float32 [0, 1]."""
    rng = kernels.Rng(seed)
    n = tf.shape(images)[0]
    k = tf.shape(policy.op_ids)[0]
    chosen = tf.where(rng.uniform([n]) < policy.p_none, -1, rng.integers([n], k))
    return apply_sub_policies(images, policy, chosen, rng.seed(), available)
