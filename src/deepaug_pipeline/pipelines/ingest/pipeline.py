"""Ingest pipeline: raw_images → validated images → search_subset, seed_validation_pool, test_set, train_set."""

from kedro.pipeline import Pipeline, node, pipeline

from deepaug_pipeline.pipelines.ingest.nodes import split_images, validate_images


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(validate_images, ["raw_images", "params:ingest"], "validated_images", name="validate_images"),
            node(
                split_images,
                ["validated_images", "params:ingest", "params:seed"],
                ["search_subset", "seed_validation_pool", "test_set", "train_set", "dataset_summary"],
                name="split_images",
            ),
        ]
    )
