"""Model names, checked without building anything (and without importing Keras): config validation uses this, so a
typo in ``search.child.model`` is refused before ingest, not after it."""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

from deepaug_pipeline.errors import UserError

BUILTIN_NAMES = ("basiccnn", "fastcnn")
# The keyword options of the built-in builders (models/__init__.py), known without importing Keras; a test holds them
# to the builders' signatures. A wrn_<depth>_<width> name fixes depth and width.
BUILTIN_OPTIONS = {"basiccnn": ("dropout",), "fastcnn": ("width", "dense", "dropout"), "wrn": ("dropout", "weight_decay")}
WRN = re.compile(r"^wrn_(\d+)_(\d+)$")


class ModelConfigError(UserError, ValueError):
    """A model name or builder path cannot be used; the message names it."""


def wrn_shape(name: str) -> tuple[int, int] | None:
    """(depth, width) of a ``wrn_<depth>_<width>`` name (None for other names); a bad depth or width is refused."""
    match = WRN.match(name)
    if not match:
        return None
    depth, width = int(match[1]), int(match[2])
    if (depth - 4) % 6 != 0 or depth < 10 or width < 1:
        raise ModelConfigError(f"model '{name}': wrn depth must be 6N + 4 (e.g. 16, 28) and width >= 1")
    return depth, width


def custom_builder(name: str) -> Callable:
    """The builder function a dotted path names (``package.module.function`` or ``package.module:function``)."""
    module_name, sep, attr = name.replace(":", ".").rpartition(".")
    if not sep:
        raise ModelConfigError(
            f"unknown model '{name}': use basiccnn, fastcnn, wrn_<depth>_<width> or a dotted path to a builder function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - ImportError, or the module's own SyntaxError etc.: named, not a traceback
        raise ModelConfigError(f"model '{name}': cannot import module '{module_name}' ({type(exc).__name__}: {exc})") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ModelConfigError(f"model '{name}': module '{module_name}' has no callable '{attr}'")
    return builder


def check_model_name(name: str) -> str:
    """``name`` if a model can be built from it; otherwise ModelConfigError saying why."""
    if name not in BUILTIN_NAMES and wrn_shape(name) is None:
        custom_builder(name)
    return name


def check_model_options(name: str, options: Mapping[str, Any]) -> None:
    """ModelConfigError naming the options the builder of ``name`` does not take, before anything is built. A custom
    builder is checked against its signature as ``build_model`` calls it, so one with ``**kwargs`` takes any."""
    kind = name if name in BUILTIN_NAMES else "wrn" if wrn_shape(name) is not None else None
    if kind is not None:
        takes = BUILTIN_OPTIONS[kind]
    else:
        try:
            signature = inspect.signature(custom_builder(name))
        except (TypeError, ValueError):  # a builder without a signature Python can read: it will say so itself
            return
        try:
            signature.bind(None, None, **options)  # as build_model calls it: (input_shape, n_classes, **options)
            return
        except TypeError as exc:
            reason = str(exc)
        params = list(signature.parameters.values())
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:2]
        takes = tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in positional)
        if not set(options) - set(takes):
            raise ModelConfigError(f"model '{name}' cannot be called with these options ({reason})")
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ModelConfigError(f"model '{name}' takes no option {', '.join(map(repr, unknown))} (it takes {', '.join(takes) or 'none'})")
    bad = [f"{option}={value!r} (it takes {need})" for option, value in options.items() if kind and (need := _needs(kind, option, value))]
    if bad:
        raise ModelConfigError(f"model '{name}': bad option value {'; '.join(bad)}")


def _needs(kind: str, option: str, value: Any) -> str | None:
    """What a built-in builder's ``option`` takes, if ``value`` is not that (Keras would refuse it mid-run, or, at a
    dropout of 1, train on nothing)."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if option == "dropout":
        top = 0.5 if kind == "basiccnn" else 1.0  # basiccnn's last dropout runs at twice the rate
        return None if number and 0 <= value < top else f"a number in [0, {top:g})"
    if option == "weight_decay":
        return None if number and value >= 0 else "a finite number >= 0"
    if option in ("width", "dense"):  # layer sizes
        return None if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1 else "an integer >= 1"
    return None
