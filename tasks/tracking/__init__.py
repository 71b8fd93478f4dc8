"""MLflow: the loop's and rounds' runs, their metrics and artifacts, and the round history."""
