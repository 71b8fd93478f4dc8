"""Where the flows run: the process environment, local services (Prefect, MLflow) and the
production profile as local processes."""
