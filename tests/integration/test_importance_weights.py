"""``model.importance_weighting``: the items the random fraction drew stand for the whole pool,
so training weights them by their inverse selection probability (capped, mean 1). A round's
plain steps (real store, MLflow SQLite, simulated annotators): the champion it registers must
be exactly the model fit with the hand-computed weights, and differ from the unweighted one."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from tasks.data import store
from tasks.data.profile import resolve
from tasks.loop import demo, labeling, learning, lifecycle, rounds
from tasks.loop.training_data import consensus, fit_round_model, labeled_frame
from tasks.settings import Settings

pytestmark = [pytest.mark.integration]


def _round(tmp_path, weighting: bool):
    settings = Settings.model_validate(
        {
            "project": {
                "name": f"it-weights-{weighting}",
                "work_dir": str(tmp_path / ".labelwise"),
                "data_dir": str(tmp_path / "data"),
                "seed": 1,
            },
            "strategy": {"name": "margin", "batch_size": 10, "random_fraction": 0.5},
            "model": {"importance_weighting": weighting, "max_importance_weight": 20.0},
            "monitor": {"enabled": False},
            "versioning": {"enabled": False},
            "loop": {"demo_rows": 300, "initial_labels": 20, "stop_set_size": 0},
        }
    )
    demo.seed_project(settings)
    lifecycle.begin_round(settings, 1)
    for step in (labeling.ingest_new, labeling.select, labeling.dispatch, labeling.collect):
        step(settings, 1)
    state = learning.train(settings, 1)
    return settings, state


def test_random_picks_are_weighted_by_their_inverse_selection_probability(tmp_path):
    from tasks.model.registry import load_champion
    from tasks.tracking.runs import setup_tracking

    settings, state = _round(tmp_path / "weighted", weighting=True)
    manifest = store.read_manifest(settings, 1)
    random_ids = set(manifest.loc[manifest["source"] == "random", "id"])
    assert len(random_ids) == 5  # half the batch of 10
    eligible = rounds.load_round(settings, 1).info["n_eligible"]
    assert eligible == len(store.read_pool(settings)) - 20  # the seed set is excluded

    pool = store.read_pool(settings)
    labeled = labeled_frame(pool, consensus(settings).labels)
    raw = np.where(labeled["id"].isin(random_ids), min(eligible / 5, 20.0), 1.0)
    weights = raw / raw.mean()
    assert state.info["max_importance_weight"] == pytest.approx(weights.max())
    expected = fit_round_model(resolve(settings), pool, labeled, sample_weight=weights)
    champion, _ = load_champion(setup_tracking(settings))
    np.testing.assert_allclose(
        champion.predict_proba(labeled), expected.predict_proba(labeled), atol=1e-10
    )

    plain_settings, plain_state = _round(tmp_path / "plain", weighting=False)
    assert plain_state.info["max_importance_weight"] is None
    setup_tracking(plain_settings)
    plain, _ = load_champion(setup_tracking(plain_settings))
    assert not np.allclose(plain.predict_proba(labeled), champion.predict_proba(labeled))
    mlflow.set_tracking_uri(None)
