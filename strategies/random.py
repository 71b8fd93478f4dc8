"""Random sampling: the baseline every strategy must beat, and the source of bias-guard picks.

Rows get uniform random keys and the batch is the top-k keys, so random selection streams over
chunks like any other strategy and gives the same rows chunked or in memory.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from strategies.base import QueryContext, ScoreStrategy


class RandomSampling(ScoreStrategy):
    """Uniform random rows. Cost: O(n) random draws, no model call."""

    name = "random"
    cost: ClassVar[str] = "O(n) random keys, no model call"
    row_keys: ClassVar[bool] = True
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression", "sequence"})

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        return ctx.rng.random(X_chunk.shape[0])
