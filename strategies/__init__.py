"""Query strategies: pure numpy/scipy/scikit-learn, no I/O.

``strategies.get(name, **params)`` builds a strategy; every strategy has
``select(model, X_pool, batch_size, *, X_labeled=None, y_labeled=None, random_state=None)``
returning unique pool row indices, most informative first, and ``query(...)`` returning a
:class:`Selection` with scores and sources. Score functions on probability arrays live in
:mod:`strategies.uncertainty`, :mod:`strategies.committee` and :mod:`strategies.sequence`.
"""

from strategies.base import QueryStrategy, ScoreStrategy, Selection
from strategies.committee import kl_to_consensus, mutual_information, vote_entropy
from strategies.registry import available, describe, get, parameters
from strategies.regression import predictive_std
from strategies.selection import top_k
from strategies.sequence import aggregate_ragged, sequence_scores
from strategies.uncertainty import entropy, least_confidence, margin

__all__ = [
    "QueryStrategy",
    "ScoreStrategy",
    "Selection",
    "aggregate_ragged",
    "available",
    "describe",
    "entropy",
    "get",
    "kl_to_consensus",
    "least_confidence",
    "margin",
    "mutual_information",
    "parameters",
    "predictive_std",
    "sequence_scores",
    "top_k",
    "vote_entropy",
]
