"""Project hooks."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl

from deepaug_pipeline.config import validate_params


class ConfigValidationHook:
    """Reject bad parameters before any node runs."""

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_params(context.params)
