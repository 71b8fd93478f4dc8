"""Strategies are rebuilt by name (get_params / clone), guards come from one definition, and a
strategy's declared plan, not its type, decides whether scale-out can score it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

import strategies
from strategies.base import NotChunkable, QueryContext
from strategies.guards import CostWeighted, ExponentialMechanism, Guards, RandomMix
from strategies.uncertainty import Margin
from strategies.variance_reduction import _ReductionScore
from tasks.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_clones_to_equal_parameters(name):
    strategy = strategies.get(name)
    assert strategy.clone().get_params() == strategy.get_params()
    assert repr(strategy.clone()) == repr(strategy)


def test_clone_changes_a_parameter_by_name_and_refuses_an_unknown_one():
    hybrid = strategies.get("hybrid", prefilter=4)
    assert hybrid.clone(prefilter=7).get_params() == {**hybrid.get_params(), "prefilter": 7}
    with pytest.raises(ValueError, match="no parameter"):
        hybrid.clone(prefiltre=7)


def test_a_guarded_strategy_clones_with_its_guard():
    guarded = strategies.get("margin", random_fraction=0.25)
    assert isinstance(guarded, RandomMix) and guarded.clone().fraction == 0.25


def test_a_regressor_hybrid_with_privacy_noise_perturbs_the_variance_reduction_not_margin():
    # before: map_scores rebuilt hybrid by position around margin, whatever the model
    hybrid = strategies.get("hybrid", privacy_epsilon=1.0, cold_start=0)
    scorer = hybrid.scorer(Ridge())
    assert isinstance(scorer, ExponentialMechanism) and isinstance(scorer.base, _ReductionScore)
    classifier = hybrid.scorer(LogisticRegression())
    assert isinstance(classifier.base, Margin)


def test_wrappers_stack_in_the_order_the_guards_apply():
    hybrid = strategies.get("hybrid", class_costs={"a": 2.0}, privacy_epsilon=1.0)
    scorer = hybrid.scorer(LogisticRegression())
    assert isinstance(scorer, ExponentialMechanism) and isinstance(scorer.base, CostWeighted)


def test_guard_keywords_and_a_guards_object_are_the_same_and_not_both():
    by_keyword = strategies.get("margin", random_fraction=0.2, rare_class_quota=0.1)
    by_object = strategies.get("margin", guards=Guards(random_fraction=0.2, rare_class_quota=0.1))
    assert repr(by_keyword) == repr(by_object)
    with pytest.raises(ValueError, match="not both"):
        strategies.get("margin", guards=Guards(), random_fraction=0.2)


def test_the_settings_guards_are_every_guard_the_settings_model_has():
    settings = Settings.model_validate(
        {"strategy": {"random_fraction": 0.3, "class_costs": {"x": 2}, "privacy_epsilon": 0.5}}
    )
    guards = settings.strategy.guards()
    assert (guards.random_fraction, guards.class_costs, guards.privacy_epsilon) == (
        0.3,
        {"x": 2.0},
        0.5,
    )
    in_settings = set(type(settings.strategy).model_fields)
    assert set(Guards.names()) - in_settings == {"privacy_sensitivity"}  # fixed at 1 in the loop


def _ctx(n_labeled: int = 50):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X[:n_labeled], y[:n_labeled])
    return QueryContext.build(model, X, X_labeled=X[:n_labeled], y_labeled=y[:n_labeled]), X


@pytest.mark.parametrize(
    ("strategy", "why"),
    [
        (strategies.get("coreset"), "whole pool"),
        (strategies.get("margin", random_fraction=0.2), "whole pool"),
        (strategies.get("hybrid", cold_start=100), "cold start"),
    ],
)
def test_strategies_that_need_the_whole_pool_declare_it(strategy, why):
    ctx, _ = _ctx()
    with pytest.raises(NotChunkable, match=why):
        strategy.chunk_plan(ctx, 5)


def test_a_score_plan_declares_when_workers_cannot_reproduce_it():
    ctx, _ = _ctx()
    assert strategies.get("margin").chunk_plan(ctx, 5).not_distributable is None
    noisy = strategies.get("margin", privacy_epsilon=1.0).chunk_plan(ctx, 5)
    assert "privacy noise" in noisy.not_distributable
    costed = strategies.get("margin", class_costs={0: 1.0}, privacy_epsilon=1.0)
    assert costed.chunk_plan(ctx, 5).not_distributable  # the noise under the cost wrapper
    assert strategies.get("random").chunk_plan(ctx, 5).scorer.row_keys


def test_the_in_memory_query_is_its_plan_run_here():
    ctx, _ = _ctx()
    strategy = strategies.get("hybrid", cold_start=0)
    planned = strategy.chunk_plan(ctx, 8).run(ctx)
    again, _ = _ctx()
    queried = strategy._query(again, 8)
    np.testing.assert_array_equal(planned.indices, queried.indices)
