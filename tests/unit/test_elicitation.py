"""Elicitation strategies on hand-computed catalogs, their contract as properties, and the ALS
factor model: recovery of a noiseless low-rank matrix and the fold-in of a new user."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strategies.elicitation import (
    STRATEGIES,
    elicit,
    entropy,
    factor_uncertainty,
    item_counts,
    item_entropy,
    item_variance,
    pop_entropy,
    popularity,
    random_items,
    variance,
)
from tasks.ratings.factors import fit_als, rmse

pytestmark = pytest.mark.unit

# item 0: four 5s; item 1: a 1 and a 5; item 2: 1, 2, 3 (scale 1..5)
ITEMS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
VALUES = np.array([5, 5, 5, 5, 1, 5, 1, 2, 3], dtype=float)
LEVELS = np.arange(1, 6)


def test_catalog_statistics_by_hand() -> None:
    assert item_counts(ITEMS, 4).tolist() == [4, 2, 3, 0]
    np.testing.assert_allclose(item_entropy(ITEMS, VALUES, 4, LEVELS), [0, 1, math.log2(3), 0])
    np.testing.assert_allclose(item_variance(ITEMS, VALUES, 4), [0, 4, 2 / 3, 0])


def test_each_strategy_orders_the_items_by_hand() -> None:
    assert popularity(ITEMS, 3, 3).items.tolist() == [0, 2, 1]
    picks = entropy(ITEMS, VALUES, 3, 3, levels=LEVELS)
    assert picks.items.tolist() == [2, 1, 0]
    np.testing.assert_allclose(picks.scores, [math.log2(3), 1, 0])
    picks = pop_entropy(ITEMS, VALUES, 3, 3, levels=LEVELS)
    assert picks.items.tolist() == [2, 1, 0]  # log(3) log2(3) > log(2) x 1 > log(4) x 0
    np.testing.assert_allclose(picks.scores, [math.log(3) * math.log2(3), math.log(2), 0])
    assert variance(ITEMS, VALUES, 3, 3).items.tolist() == [1, 2, 0]


def test_exclude_and_candidates() -> None:
    assert popularity(ITEMS, 3, 3, exclude=np.array([0])).items.tolist() == [2, 1]
    mask = np.array([True, True, False])
    assert popularity(ITEMS, 3, 3, candidates=mask).items.tolist() == [0, 1]
    assert popularity(ITEMS, 3, 3, candidates=np.array([1, 2]), exclude=mask).items.tolist() == [2]


def test_a_value_between_levels_counts_for_the_nearest() -> None:
    # 2 is nearest to 1 on the levels {1, 5}: item 0 gets {1, 1}, entropy 0; item 1 {1, 5}: 1 bit
    got = item_entropy(np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 1.0, 5.0]), 2, levels=[1, 5])
    np.testing.assert_allclose(got, [0, 1])


def test_factor_uncertainty_by_hand() -> None:
    # v0 = (1, 0), v1 = (0, 2), v2 = (1, 1), reg 1: Sigma = I, scores 1, 4, 2 -> item 1; then
    # Sigma = diag(1, 1/5): scores 1, 1.2 -> item 2; then Sigma_00 = 1 - 1/2.2 = 6/11 -> item 0
    v = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    picks = factor_uncertainty(v, 3, reg=1.0)
    assert picks.items.tolist() == [1, 2, 0]
    np.testing.assert_allclose(picks.scores, [4, 1.2, 6 / 11])
    # an already rated item 1 is conditioned on: the posterior starts where the pick left it
    picks = factor_uncertainty(v, 2, reg=1.0, exclude=[1], prior_items=[1])
    assert picks.items.tolist() == [2, 0]
    np.testing.assert_allclose(picks.scores, [1.2, 6 / 11])
    # a larger prior precision scales the first score by 1/reg
    assert factor_uncertainty(v, 1, reg=4.0).scores[0] == pytest.approx(1.0)


def test_elicit_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="unknown elicitation strategy"):
        elicit("nope", ITEMS, VALUES, 3, 2)
    with pytest.raises(ValueError, match="needs item_factors"):
        elicit("factor_uncertainty", ITEMS, VALUES, 3, 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        item_counts(ITEMS, 2)


@st.composite
def catalogs(draw: st.DrawFn) -> dict:
    n_items = draw(st.integers(1, 25))
    n = draw(st.integers(0, 80))
    items = draw(arrays(np.int64, n, elements=st.integers(0, n_items - 1)))
    values = draw(arrays(np.float64, n, elements=st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0])))
    rank = draw(st.integers(1, 4))
    factors = draw(
        arrays(np.float64, (n_items, rank), elements=st.floats(-3, 3, allow_subnormal=False))
    )
    exclude = draw(arrays(bool, n_items))
    candidates = draw(st.none() | arrays(bool, n_items))
    return {
        "items": items,
        "values": values,
        "n_items": n_items,
        "factors": factors,
        "exclude": exclude,
        "candidates": candidates,
    }


@settings(max_examples=150, deadline=None)
@given(catalogs(), st.sampled_from(STRATEGIES), st.integers(0, 30), st.integers(0, 2**31))
def test_picks_are_distinct_allowed_and_deterministic(
    c: dict, strategy: str, k: int, seed: int
) -> None:
    def run() -> np.ndarray:
        return elicit(
            strategy, c["items"], c["values"], c["n_items"], k, item_factors=c["factors"],
            reg=0.5, exclude=c["exclude"], candidates=c["candidates"], seed=seed,
        ).items  # fmt: skip

    picks = run()
    allowed = ~c["exclude"] & (True if c["candidates"] is None else c["candidates"])
    assert picks.shape[0] == min(k, int(allowed.sum()))
    assert len(set(picks.tolist())) == picks.shape[0]
    assert allowed[picks].all()
    np.testing.assert_array_equal(picks, run())


@settings(max_examples=150, deadline=None)
@given(catalogs(), st.sampled_from(["popularity", "entropy", "pop_entropy", "variance"]))
def test_score_strategies_pick_in_descending_score(c: dict, strategy: str) -> None:
    picks = elicit(strategy, c["items"], c["values"], c["n_items"], c["n_items"])
    assert picks.items.shape[0] == c["n_items"]
    assert np.all(np.diff(picks.scores) <= 1e-12)


@settings(max_examples=200, deadline=None)
@given(catalogs(), st.floats(0.1, 10))
def test_factor_uncertainty_first_pick_and_greedy_step(c: dict, reg: float) -> None:
    v = c["factors"]
    picks = factor_uncertainty(v, 3, reg=reg)
    prior = np.einsum("ij,ij->i", v, v) / reg
    assert picks.scores[0] == pytest.approx(prior.max(), rel=1e-9, abs=1e-12)
    assert prior[picks.items[0]] == pytest.approx(prior.max(), rel=1e-9, abs=1e-12)
    # the second pick is the argmax under the posterior after the first, by a direct inverse
    if picks.items.shape[0] > 1:
        first = v[picks.items[0]]
        sigma = np.linalg.inv(reg * np.eye(v.shape[1]) + np.outer(first, first))
        gain = np.einsum("ij,jk,ik->i", v, sigma, v)
        gain[picks.items[0]] = -np.inf
        assert picks.scores[1] == pytest.approx(gain.max(), rel=1e-7, abs=1e-9)
    # the posterior only shrinks, so the scores never rise
    assert np.all(np.diff(picks.scores) <= 1e-9)


def test_random_depends_on_the_seed_only() -> None:
    a = random_items(50, 10, seed=3).items
    assert a.tolist() == random_items(50, 10, seed=3).items.tolist()
    assert a.tolist() != random_items(50, 10, seed=4).items.tolist()


def _low_rank(seed: int, n_users: int = 60, n_items: int = 40, rank: int = 3):
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    users, items = (g.ravel() for g in np.meshgrid(np.arange(n_users), np.arange(n_items)))
    values = 3.0 + bu[users] + bi[items] + np.einsum("ij,ij->i", p[users], q[items])
    return users, items, values, rng.random(values.shape[0]) < 0.8


def test_als_recovers_a_noiseless_low_rank_matrix() -> None:
    users, items, values, seen = _low_rank(0)
    model = fit_als(users[seen], items[seen], values[seen], 60, 40, rank=3, reg=1e-4, iterations=60)
    assert rmse(model.predict(users[seen], items[seen]), values[seen]) < 1e-4
    # entries never seen: recovered from the low-rank structure (their spread is about 2)
    assert rmse(model.predict(users[~seen], items[~seen]), values[~seen]) < 1e-3
    again = fit_als(users[seen], items[seen], values[seen], 60, 40, rank=3, reg=1e-4, iterations=60)
    np.testing.assert_array_equal(model.item_factors, again.item_factors)


def test_fold_in_is_the_closed_form_of_the_trained_user() -> None:
    users, items, values, seen = _low_rank(1)
    users, items, values = users[seen], items[seen], values[seen]
    values = values + np.random.default_rng(2).normal(0, 0.3, values.shape[0])
    model = fit_als(users, items, values, 60, 40, rank=3, reg=2.0, reg_bias=0.5, iterations=10)
    mine = users == 7
    vector, bias = model.fold_in(items[mine], values[mine])
    # training solves users last: the trained user is the fold-in of their ratings
    np.testing.assert_allclose(vector, model.user_factors[7], atol=1e-9)
    assert bias == pytest.approx(model.user_bias[7], abs=1e-9)
    # the ridge solution by an augmented least squares, written out independently
    x = np.hstack([model.item_factors[items[mine]], np.ones((int(mine.sum()), 1))])
    y = values[mine] - model.mean - model.item_bias[items[mine]]
    root = np.diag(np.sqrt([2.0, 2.0, 2.0, 0.5]))
    solution = np.linalg.lstsq(np.vstack([x, root]), np.concatenate([y, np.zeros(4)]), rcond=None)
    np.testing.assert_allclose(vector, solution[0][:3], atol=1e-8)
    assert bias == pytest.approx(solution[0][3], abs=1e-8)
    predicted = model.predict_new(vector, bias, np.arange(40))
    np.testing.assert_allclose(predicted, model.predict(np.full(40, 7), np.arange(40)))


def test_a_user_with_no_ratings_gets_mean_plus_item_bias() -> None:
    users, items, values, _ = _low_rank(3)
    model = fit_als(users, items, values, 60, 40, rank=2, reg=1.0, iterations=3)
    vector, bias = model.fold_in(np.empty(0, np.int64), np.empty(0))
    assert bias == 0.0 and not vector.any()
    np.testing.assert_allclose(
        model.predict_new(vector, bias, np.arange(40)), model.mean + model.item_bias
    )
    assert model.mean == pytest.approx(values.mean())
