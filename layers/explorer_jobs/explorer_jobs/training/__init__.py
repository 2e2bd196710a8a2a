"""The schema-training job type. Keep this file empty: enqueue imports `training.payload` alone."""
