"""Search pipeline: splits → search loop → top policies (the registry runs ingest before it)."""

from kedro.pipeline import Pipeline, node, pipeline

from deepaug_pipeline.pipelines import TENSORFLOW_TAG
from deepaug_pipeline.pipelines.search.nodes import plot_best_policy, plot_convergence, search_policies, summarise_trials


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                search_policies,
                ["search_subset", "seed_validation_pool", "dataset_summary", "trial_logs",
                 "params:search", "params:seed"],
                "trials",
                name="search_policies",
            ),
            node(
                summarise_trials,
                ["trials", "params:search"],
                ["trials_table", "top_policies", "top_policies_table", "best_policy", "search_metrics"],
                name="summarise_trials",
            ),
            node(
                plot_convergence,
                ["trials_table", "trial_logs", "search_subset", "seed_validation_pool", "dataset_summary",
                 "params:search", "params:seed"],
                "convergence_plot",
                name="plot_convergence",
            ),
            node(plot_best_policy, ["best_policy", "search_subset"], "best_policy_grid", name="plot_best_policy"),
        ],
        tags=TENSORFLOW_TAG,  # TensorFlowHook configures TensorFlow before each of these nodes
    )  # fmt: skip
