"""Evaluate pipeline: search outputs + splits → final model per strategy × seed → report."""

from kedro.pipeline import Pipeline, node, pipeline

from deepaug_pipeline.pipelines import TENSORFLOW_TAG
from deepaug_pipeline.pipelines.evaluate.nodes import evaluate_strategies, summarise_evaluation, write_report


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                evaluate_strategies,
                ["train_set", "test_set", "dataset_summary", "best_policy",
                 "evaluation_logs", "params:evaluate", "params:seed"],
                "evaluation_runs",
                name="evaluate_strategies",
            ),
            node(summarise_evaluation, ["evaluation_runs", "best_policy", "params:evaluate"],
                 ["evaluation_table", "evaluation_metrics"], name="summarise_evaluation"),
            node(
                write_report,
                ["evaluation_table", "evaluation_runs", "best_policy", "trials_table", "train_set", "dataset_summary",
                 "params:evaluate", "params:seed"],
                ["report_md", "report_html", "evaluation_results_plot", "learning_curves_plot"],
                name="write_report",
            ),
        ],
        tags=TENSORFLOW_TAG,  # TensorFlowHook configures TensorFlow before each of these nodes
    )  # fmt: skip
