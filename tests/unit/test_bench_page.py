"""The headline page of `make bench-headline`: verdicts, savings, peers and rare-class factors
from hand-made results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.bench_page import page, rare_class, vs_best_peer

pytestmark = pytest.mark.unit

LABELS = [20, 40, 60]


def results(random, default, recall_random=None, recall_default=None, share=0.5):
    def run(scores, recall):
        info = {"labels": LABELS, "scores": scores}
        if recall is not None:
            info["also"] = {"minority_recall": {"scores": recall}}
        return info

    out = {
        "metric": "macro_f1",
        "n_pool": 100,
        "full_data_score": 0.9,
        "strategies": {
            "random": run(random, recall_random),
            "hybrid": run(default, recall_default),
        },
        "savings_vs_random_final": {"hybrid": {"saving": 0.25, "interval_95": [0.0, 0.5]}},
        "rarest_class_share": share,
    }
    if recall_random is not None:
        final = float(np.mean([r[-1] for r in recall_random]))
        out["also"] = {
            "minority_recall": {"savings_vs_random_final": {"random": {"random_final": final}}}
        }
    return out


def test_rare_class_counts_labels_to_random_final_recall():
    found = rare_class(
        results(
            [[0.5, 0.6, 0.7]] * 2,
            [[0.6, 0.7, 0.8]] * 2,
            recall_random=[[0.0, 0.2, 0.4], [0.0, 0.2, 0.6]],  # final mean 0.5: at 60 labels
            recall_default=[[0.5, 0.9, 0.9], [0.6, 0.9, 0.9]],  # mean 0.55 at 20 labels
        )
    )
    assert found == {"goal": pytest.approx(0.5), "ours": 20, "random": 60}


def test_best_peer_is_the_highest_aulc_and_pairs_the_seeds_it_ran():
    res = results([[0.5, 0.5, 0.5]] * 3, [[0.6, 0.6, 0.6], [0.7, 0.7, 0.7], [0.9, 0.9, 0.9]])
    peers = {
        "strategies": {
            "a": {"labels": LABELS, "scores": [[0.55] * 3, [0.55] * 3]},
            "b": {"labels": LABELS, "scores": [[0.65] * 3, [0.65] * 3]},
        }
    }
    best, (mean, low, high) = vs_best_peer(res, peers)
    assert best == "b"
    assert mean == pytest.approx(0.0)  # seeds 0 and 1 only: (0.6 - 0.65 + 0.7 - 0.65) / 2
    assert low <= mean <= high


def test_page_names_losses_and_the_rare_class_factor(tmp_path):
    worse = results([[0.8, 0.9, 0.9]] * 3, [[0.7, 0.8, 0.8], [0.7, 0.8, 0.8], [0.7, 0.8, 0.8]])
    rare = results(
        [[0.5, 0.6, 0.7]] * 2,
        [[0.6, 0.7, 0.8]] * 2,
        recall_random=[[0.0, 0.2, 0.5]] * 2,
        recall_default=[[0.5, 0.9, 0.9]] * 2,
        share=0.05,
    )
    for name, res in (("worse", worse), ("rare", rare)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(res))
    text = page(
        [("worse", "classification"), ("rare", "classification"), ("absent", "classification")],
        tmp_path,
    )
    assert "1 wins / 0 ties / 1 losses (losses: worse)" in text
    assert "rare 3.0x" in text and "**missed**: 0 of 1" in text  # 60 / 20 labels, under 5x
    assert "Not run yet: absent." in text
    assert (tmp_path / "curves.png").stat().st_size > 5_000
