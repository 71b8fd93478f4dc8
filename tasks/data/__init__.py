"""The project's data: pool, labels, holdout and round manifests (Parquet under ``data/``),
ingest, great-expectations gates and DVC versions."""
