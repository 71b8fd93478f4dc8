"""Query-by-committee and BALD: disagreement between members of a committee.

A committee is any object with ``member_probas(X) -> (n_members, n_samples, n_classes)``. It can
come from bootstrap refits of the base model, a forest's trees, given fitted members (e.g. several
xgboost models), MC-dropout passes of a PyTorch module (``strategies.torch_dropout``), or the
model itself: a model with ``query_committee(n_members, X_labeled, y_labeled, random_state)``
returns its own (``model.kind: torch_cnn``: dropout passes or a seed ensemble).

References
----------
Seung, H. S., Opper, M. & Sompolinsky, H. (1992). Query by committee. COLT.
McCallum, A. & Nigam, K. (1998). Employing EM and pool-based active learning for text
classification. ICML (KL-to-consensus).
Houlsby, N., Huszar, F., Ghahramani, Z. & Lengyel, M. (2011). Bayesian active learning for
classification and preference learning. arXiv:1112.5745 (BALD).
Gal, Y., Islam, R. & Ghahramani, Z. (2017). Deep Bayesian active learning with image data. ICML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from strategies._refit import refit_warm
from strategies.base import QueryContext, ScoreStrategy, sklearn_seed
from strategies.uncertainty import _entropy_rows


def _check_member_probas(member_probas: np.ndarray) -> np.ndarray:
    member_probas = np.asarray(member_probas, dtype=np.float64)
    if member_probas.ndim != 3:
        raise ValueError(
            "member_probas must have shape (n_members, n_samples, n_classes), "
            f"got {member_probas.shape}"
        )
    return member_probas


def vote_entropy(member_probas: np.ndarray) -> np.ndarray:
    """Entropy of the members' hard votes: ``-sum_k (V_k/M) log(V_k/M)``.

    Parameters
    ----------
    member_probas : ndarray of shape (n_members, n_samples, n_classes)

    Returns
    -------
    scores : ndarray of shape (n_samples,); 0 when all members vote alike.
    """
    member_probas = _check_member_probas(member_probas)
    n_members, _, n_classes = member_probas.shape
    votes = member_probas.argmax(axis=2)  # (M, n)
    shares = (votes[..., None] == np.arange(n_classes)).sum(axis=0) / n_members  # (n, K)
    return _entropy_rows(shares)


def kl_to_consensus(member_probas: np.ndarray) -> np.ndarray:
    """Mean KL divergence of each member from the committee mean: ``mean_m KL(p_m || p_bar)``.

    With equally weighted members this equals :func:`mutual_information` (it is the generalised
    Jensen-Shannon divergence); so ``qbc_kl`` and ``bald`` rank rows identically for the same committee.

    Parameters
    ----------
    member_probas : ndarray of shape (n_members, n_samples, n_classes)

    Returns
    -------
    scores : ndarray of shape (n_samples,); 0 when all members agree.
    """
    member_probas = _check_member_probas(member_probas)
    consensus = member_probas.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = member_probas * (np.log(member_probas) - np.log(consensus)[None])
    terms[member_probas <= 0] = 0.0  # 0 log 0 = 0; p_bar > 0 wherever any p_m > 0
    return terms.sum(axis=2).mean(axis=0)


def mutual_information(member_probas: np.ndarray) -> np.ndarray:
    """BALD score ``H(mean_m p_m) - mean_m H(p_m)``: information the label carries about the model.

    High where members are each confident but disagree; 0 where they agree (even if uncertain).

    Parameters
    ----------
    member_probas : ndarray of shape (n_members, n_samples, n_classes)

    Returns
    -------
    scores : ndarray of shape (n_samples,), >= 0 up to rounding.
    """
    member_probas = _check_member_probas(member_probas)
    total = _entropy_rows(member_probas.mean(axis=0))
    expected = _entropy_rows(member_probas).mean(axis=0)
    return np.maximum(total - expected, 0.0)


class FittedCommittee:
    """Fitted classifiers whose ``predict_proba`` columns are aligned on a common class list."""

    def __init__(self, members: Sequence[Any], classes: np.ndarray | None = None) -> None:
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        self.members = list(members)
        if classes is None:
            classes = np.unique(np.concatenate([np.asarray(m.classes_) for m in self.members]))
        self.classes_ = np.asarray(classes)
        self._columns = [self._column_map(m) for m in self.members]

    def _column_map(self, member: Any) -> np.ndarray | None:
        member_classes = getattr(member, "classes_", None)
        if member_classes is None or np.array_equal(np.asarray(member_classes), self.classes_):
            return None
        positions = np.searchsorted(self.classes_, member_classes)
        if np.any(positions >= len(self.classes_)) or np.any(
            self.classes_[np.minimum(positions, len(self.classes_) - 1)] != member_classes
        ):
            raise ValueError(f"member classes {member_classes} are not among {self.classes_}")
        return positions

    def member_probas(self, X: Any) -> np.ndarray:
        out = np.zeros((len(self.members), X.shape[0], len(self.classes_)))
        for m, (member, cols) in enumerate(zip(self.members, self._columns, strict=True)):
            proba = member.predict_proba(X)
            if cols is None:
                out[m] = proba
            else:
                out[m][:, cols] = proba
        return out


class ForestCommittee:
    """The trees of a fitted scikit-learn forest (optionally the last step of a Pipeline)."""

    def __init__(self, model: Any) -> None:
        self.pre, self.forest = _split_pipeline(model)
        self.members = list(self.forest.estimators_)
        self.classes_ = np.asarray(self.forest.classes_)

    def member_probas(self, X: Any) -> np.ndarray:
        if self.pre is not None:
            X = self.pre.transform(X)
        X = np.asarray(X, dtype=np.float32)
        return np.stack([tree.predict_proba(X, check_input=False) for tree in self.members])


def _split_pipeline(model: Any) -> tuple[Any, Any]:
    steps = getattr(model, "steps", None)
    if steps is None:
        return None, model
    return (model[:-1] if len(steps) > 1 else None), model[-1]


def is_tree_ensemble(model: Any) -> bool:
    _, final = _split_pipeline(model)
    trees = getattr(final, "estimators_", None)
    return isinstance(trees, list) and len(trees) >= 2 and all(hasattr(t, "tree_") for t in trees)


def stratified_bootstrap(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices resampled with replacement within each class, so every member sees every class."""
    parts = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        parts.append(rng.choice(rows, size=rows.shape[0], replace=True))
    return np.concatenate(parts)


def bootstrap_committee(
    model: Any, X_labeled: Any, y_labeled: np.ndarray, n_members: int, rng: np.random.Generator
) -> FittedCommittee:
    """``n_members`` clones of ``model`` refit on stratified bootstrap resamples of the labeled set."""
    if X_labeled is None or y_labeled is None:
        raise ValueError(
            "a bootstrap committee needs X_labeled and y_labeled (or pass members=, "
            "or use a forest whose trees form the committee)"
        )
    y_labeled = np.asarray(y_labeled)
    members = []
    for _ in range(n_members):
        rows = stratified_bootstrap(y_labeled, rng)
        X_rows = X_labeled.iloc[rows] if hasattr(X_labeled, "iloc") else X_labeled[rows]
        members.append(refit_warm(model, X_rows, y_labeled[rows], sklearn_seed(rng)))
    classes = getattr(model, "classes_", None)
    return FittedCommittee(members, classes=np.unique(y_labeled) if classes is None else classes)


def make_committee(
    model: Any,
    ctx: QueryContext,
    n_members: int,
    members: Any = None,
) -> Any:
    """The committee for a query: given members, the model's own (``query_committee``), a
    forest's trees, or bootstrap refits."""
    if members is not None:
        if hasattr(members, "member_probas"):
            return members
        return FittedCommittee(members, classes=getattr(model, "classes_", None))
    own = getattr(model, "query_committee", None)
    if callable(own):
        return own(n_members, ctx.X_labeled, ctx.y_labeled, sklearn_seed(ctx.rng))
    if is_tree_ensemble(model):
        return ForestCommittee(model)
    return bootstrap_committee(model, ctx.X_labeled, ctx.y_labeled, n_members, ctx.rng)


class _CommitteeStrategy(ScoreStrategy):
    score_fn: ClassVar[Any]
    cost: ClassVar[str] = (
        "n_members predict_proba passes; bootstrap committees also refit n_members models"
    )

    def __init__(self, n_members: int = 5, members: Any = None) -> None:
        self.n_members = n_members
        self.members = members

    def prepare(self, ctx: QueryContext) -> Any:
        if self.n_members < 2:
            raise ValueError(f"{self.name}: n_members must be >= 2, got {self.n_members}")
        return make_committee(ctx.model, ctx, self.n_members, self.members)

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        return type(self).score_fn(state.member_probas(X_chunk))


class QBCVoteEntropy(_CommitteeStrategy):
    """Query by committee, vote entropy: rows the members' hard votes split on."""

    name = "qbc_vote_entropy"
    score_fn = staticmethod(vote_entropy)


class QBCKL(_CommitteeStrategy):
    """Query by committee, mean KL divergence of members from their consensus."""

    name = "qbc_kl"
    score_fn = staticmethod(kl_to_consensus)


class BALD(_CommitteeStrategy):
    """BALD: mutual information between the label and the model, over any committee."""

    name = "bald"
    score_fn = staticmethod(mutual_information)
