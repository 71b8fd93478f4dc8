"""The champion as it is served: one pipeline from raw items (a frame of the raw columns: table
columns, a text, an image path, a sentence's tokens) to predictions, logged to MLflow as a
python-function model with a signature and an input example, so that
``mlflow.pyfunc.load_model("models:/<name>@champion").predict(raw_frame)`` works for every data
type. Selection uses its two halves: the fitted featurizer and the estimator."""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class RawInputModel(mlflow.pyfunc.PythonModel):
    """A fitted featurizer and estimator; ``task`` decides the shape of predictions (classes,
    numbers, or each sentence's tags as a JSON list)."""

    def __init__(self, featurizer: Any, estimator: Any, task: str, columns: list[str]) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.task = task
        self.columns = list(columns)

    def features(self, frame: pd.DataFrame) -> Any:
        """The model's input for ``frame`` (what the strategies score)."""
        return self.featurizer.transform(frame)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        """Predictions for raw items (pyfunc): classes, numbers, or JSON tag lists."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        predicted = self.estimator.predict(self.features(frame))
        if self.task == "ner":
            return [json.dumps([str(t) for t in tags]) for tags in predicted]
        return np.asarray(predicted)

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self.estimator.predict_proba(self.features(frame))

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_)
