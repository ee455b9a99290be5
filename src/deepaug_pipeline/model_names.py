"""Model names, checked without building anything (and without importing Keras): config validation uses this, so a
typo in ``search.child.model`` is refused before ingest, not after it."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

BUILTIN_NAMES = ("basiccnn", "fastcnn")
WRN = re.compile(r"^wrn_(\d+)_(\d+)$")


class ModelConfigError(ValueError):
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
