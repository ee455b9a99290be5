"""Project hooks: refuse bad parameters and missing inputs before any node runs."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl

from deepaug_pipeline.config import ConfigError, validate_params

# Inputs that only the search pipeline writes: missing ones mean "run the search first".
SEARCH_OUTPUTS = {"search_subset", "seed_validation_pool", "test_set", "dataset_summary", "best_policy", "trials_table"}


class ConfigValidationHook:
    """Reject bad parameters and missing pipeline inputs before any work starts."""

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_params(context.params)

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        missing = sorted(
            name for name in pipeline.inputs() if not name.startswith("params:") and name != "parameters" and not catalog.exists(name)
        )
        if not missing:
            return
        where = [f"{name} ({catalog.get(name)._describe().get('filepath', '') or 'see catalog'})" for name in missing]
        if set(missing) & SEARCH_OUTPUTS:
            raise ConfigError(
                f"missing search outputs: {', '.join(where)}. Run the search first: `kedro run --pipeline=search` "
                "(with the same --env)."
            )
        raise ConfigError(f"missing pipeline inputs: {', '.join(where)}")
