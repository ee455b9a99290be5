"""deepaug-pipeline."""
