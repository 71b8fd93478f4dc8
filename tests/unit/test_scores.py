"""Hand-computed values and properties of the pure score functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strategies import (
    aggregate_ragged,
    entropy,
    kl_to_consensus,
    least_confidence,
    margin,
    mutual_information,
    predictive_std,
    sequence_scores,
    vote_entropy,
)

pytestmark = pytest.mark.unit

P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.4, 0.4, 0.2],
        [1.0, 0.0, 0.0],
        [1 / 3, 1 / 3, 1 / 3],
    ]
)


def test_least_confidence_hand_computed():
    np.testing.assert_allclose(least_confidence(P), [0.3, 0.6, 0.0, 2 / 3])


def test_margin_hand_computed():
    # 1 - (p1 - p2): 1 - (0.7 - 0.2), 1 - (0.4 - 0.4), 1 - (1 - 0), 1 - 0
    np.testing.assert_allclose(margin(P), [0.5, 1.0, 0.0, 1.0])


def test_margin_binary_and_single_class():
    np.testing.assert_allclose(margin(np.array([[0.9, 0.1], [0.5, 0.5]])), [0.2, 1.0])
    np.testing.assert_allclose(margin(np.array([[1.0], [1.0]])), [0.0, 0.0])


def test_entropy_hand_computed_and_safe_at_zero():
    expected = [
        -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
        -(2 * 0.4 * np.log(0.4) + 0.2 * np.log(0.2)),
        0.0,
        np.log(3),
    ]
    with np.errstate(all="raise"):  # no warning may escape for p = 0
        scores = entropy(P)
    np.testing.assert_allclose(scores, expected)
    assert np.isfinite(scores).all()


def test_score_functions_reject_wrong_shape():
    for fn in (least_confidence, margin, entropy):
        with pytest.raises(ValueError, match="n_samples, n_classes"):
            fn(np.array([0.5, 0.5]))


def _normalise(raw: np.ndarray) -> np.ndarray:
    raw = raw + 1e-9
    return raw / raw.sum(axis=1, keepdims=True)


proba_rows = arrays(
    np.float64,
    st.tuples(st.integers(1, 20), st.integers(2, 8)),
    elements=st.floats(0, 1, allow_nan=False, allow_subnormal=False),
).map(_normalise)


@settings(max_examples=60, deadline=None)
@given(proba_rows, st.randoms(use_true_random=False))
def test_scores_invariant_to_class_order(probas, rnd):
    perm = list(range(probas.shape[1]))
    rnd.shuffle(perm)
    for fn in (least_confidence, margin, entropy):
        np.testing.assert_allclose(fn(probas), fn(probas[:, perm]), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(proba_rows)
def test_scores_maximal_at_uniform(probas):
    k = probas.shape[1]
    uniform = np.full((1, k), 1.0 / k)
    for fn in (least_confidence, margin, entropy):
        assert (fn(probas) <= fn(uniform)[0] + 1e-9).all()


@pytest.mark.parametrize("k", [2, 3, 10])
def test_scores_zero_at_one_hot(k):
    one_hot = np.eye(k)
    for fn in (least_confidence, margin, entropy):
        np.testing.assert_allclose(fn(one_hot), 0.0, atol=1e-12)


# ---- committees: member_probas has shape (n_members, n_samples, n_classes)

AGREE = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])  # members agree, both unsure
DISAGREE = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # each sure, opposite
MIXED = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.2, 0.8]]])


def test_vote_entropy_hand_computed():
    np.testing.assert_allclose(vote_entropy(DISAGREE), [np.log(2)])
    # votes: class 0, class 0, class 1 -> shares 2/3, 1/3
    np.testing.assert_allclose(
        vote_entropy(MIXED), [-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))]
    )


def test_bald_is_zero_when_members_agree_even_if_unsure():
    np.testing.assert_allclose(mutual_information(AGREE), [0.0], atol=1e-12)
    np.testing.assert_allclose(mutual_information(DISAGREE), [np.log(2)])


def test_bald_hand_computed_mixed_committee():
    mean = np.array([(0.9 + 0.6 + 0.2) / 3, (0.1 + 0.4 + 0.8) / 3])

    def h(p):
        return -sum(x * np.log(x) for x in p)

    expected = h(mean) - (h([0.9, 0.1]) + h([0.6, 0.4]) + h([0.2, 0.8])) / 3
    np.testing.assert_allclose(mutual_information(MIXED), [expected])


def test_kl_to_consensus_hand_computed():
    # p_bar = (0.5, 0.5); KL((1,0) || p_bar) = log 2 for each member
    np.testing.assert_allclose(kl_to_consensus(DISAGREE), [np.log(2)])
    np.testing.assert_allclose(kl_to_consensus(AGREE), [0.0], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 6), st.integers(1, 10), st.integers(2, 5)),
        elements=st.floats(0, 1, allow_nan=False, allow_subnormal=False),
    )
)
def test_kl_to_consensus_equals_mutual_information(raw):
    probas = raw + 1e-9
    probas /= probas.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(kl_to_consensus(probas), mutual_information(probas), atol=1e-9)
    assert (mutual_information(probas) >= 0).all()


def test_predictive_std_hand_computed():
    np.testing.assert_allclose(predictive_std(np.array([[1.0, 0.0], [3.0, 0.0]])), [1.0, 0.0])
    with pytest.raises(ValueError):
        predictive_std(np.array([[1.0, 2.0]]))


# ---- ragged (token / box) aggregation


def test_aggregate_ragged_hand_computed():
    values = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
    lengths = np.array([2, 0, 3])
    np.testing.assert_allclose(aggregate_ragged(values, lengths, "max"), [0.5, 0.0, 0.9])
    np.testing.assert_allclose(aggregate_ragged(values, lengths, "sum"), [0.6, 0.0, 1.4])
    np.testing.assert_allclose(aggregate_ragged(values, lengths, "mean"), [0.3, 0.0, 1.4 / 3])


def test_aggregate_ragged_rejects_mismatched_lengths_and_unknown_aggregate():
    with pytest.raises(ValueError, match="lengths sum"):
        aggregate_ragged(np.ones(3), np.array([1, 1]), "max")
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_ragged(np.ones(2), np.array([1, 1]), "median")


def test_sequence_scores_token_level():
    confident = np.array([[1.0, 0.0], [0.0, 1.0]])
    one_unsure_token = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    scores = sequence_scores([confident, one_unsure_token, np.empty((0, 2))], "margin", "max")
    np.testing.assert_allclose(scores, [0.0, 1.0, 0.0])
    mean_scores = sequence_scores([confident, one_unsure_token], "margin", "mean")
    np.testing.assert_allclose(mean_scores, [0.0, 1 / 3])


def test_newton_refit_tracks_a_real_refit():
    """EER's one-step refit is much closer to a full refit than keeping the old model."""
    from sklearn.base import clone
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from strategies._newton import NewtonRefit

    for n_classes in (2, 4):
        X, y = make_classification(
            300, 8, n_informative=5, n_classes=n_classes, flip_y=0.1, random_state=0
        )
        labeled = np.arange(100)
        model = LogisticRegression(max_iter=1000, tol=1e-10).fit(X[labeled], y[labeled])
        cand, ev = X[100:106], X[200:300]
        updated = NewtonRefit(model, X[labeled]).updated_probas(cand, ev)
        assert updated.shape == (6, n_classes, 100, n_classes)
        newton_err, stale_err = [], []
        for i in range(6):
            for c in range(n_classes):
                real = clone(model).fit(
                    np.vstack([X[labeled], cand[i : i + 1]]), np.r_[y[labeled], c]
                )
                truth = real.predict_proba(ev)
                newton_err.append(np.abs(updated[i, c] - truth).mean())
                stale_err.append(np.abs(model.predict_proba(ev) - truth).mean())
        assert np.mean(newton_err) < 0.35 * np.mean(stale_err)
