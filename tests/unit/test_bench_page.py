"""The headline page of `make bench`: verdicts, savings, peers and rare-class factors
from hand-made results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.bench_page import is_rare_class_set, page, rare_class, vs_best_peer

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
        "n_classes": 2,
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
    assert found == {"goal": pytest.approx(0.5), "ours": 20, "random": 60, "initial": 20}


def test_a_rare_set_where_random_starts_at_its_final_recall_is_named_unmeasurable(tmp_path):
    # random's recall falls from 0.6 with the initial labels to 0.4: its final mean (0.4) is
    # reached at 20 labels, so neither strategy can need fewer labels than random
    flat = results(
        [[0.5, 0.6, 0.7]] * 2,
        [[0.6, 0.7, 0.8]] * 2,
        recall_random=[[0.6, 0.5, 0.4]] * 2,
        recall_default=[[0.6, 0.9, 0.9]] * 2,
        share=0.05,
    )
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "results.json").write_text(json.dumps(flat))
    text = page([("flat", "classification")], tmp_path)
    assert "**missed**: 0 of 1 (flat 1.0x); on 1 of them (flat) random's mean recall" in text


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
    assert "1 wins / 0 ties / 1 loss (losses: worse)" in text
    assert "rare 3.0x" in text and "**missed**: 0 of 1" in text  # 60 / 20 labels, under 5x
    assert "Not run yet: absent." in text
    assert (tmp_path / "curves.png").stat().st_size > 5_000


def test_page_reads_what_was_tried_and_the_make_run_gain(tmp_path):
    out = tmp_path / "headline"
    (out / "a").mkdir(parents=True)
    (out / "a" / "results.json").write_text(json.dumps(results([[0.5] * 3] * 2, [[0.6] * 3] * 2)))
    text = page([("a", "classification")], out)
    assert "not measured: `python benchmarks/run_gain.py` has not run" in text
    assert "## What was tried" not in text  # no broad run to read

    for name, default in (("x", [[0.6] * 3] * 3), ("y", [[0.4] * 3] * 3)):
        res = results([[0.5] * 3] * 3, default)
        res["savings_vs_random_final"] = {"hybrid": {"saving": 0.5 if name == "x" else None}}
        (tmp_path / "broad" / "auto" / name).mkdir(parents=True)
        (tmp_path / "broad" / "auto" / name / "results.json").write_text(json.dumps(res))
    runs = [
        {"seed": s, "metric": "macro_f1", "champion": 0.9, "labels": 120, "random_baseline": 0.88}
        for s in range(3)
    ]
    gain = {"mean": 0.02, "interval_95": [0.01, 0.03]}
    last = {"mean": 0.01, "interval_95": [-0.01, 0.02]}  # the unselected model: not beyond it
    found = {"runs": runs, "gain": gain, "last_round_gain": last}
    (tmp_path / "run_gain.json").write_text(json.dumps(found))
    text = page([("a", "classification")], out)
    # x wins, y loses; the median of 50% and never (= 0) is 25%
    assert "| `hybrid` | 2 | 1 / 0 / 1 | 25% |" in text
    assert (
        "**missed**: over 3 seeds at 120 labels, macro_f1: the last round's model +0.0100 "
        "[-0.0100, +0.0200]; the champion (the best round by the holdout) +0.0200 "
        "[+0.0100, +0.0300]"
    ) in text


@pytest.mark.parametrize(
    ("share", "k", "rare"),
    [(0.05, 2, True), (0.2, 2, False), (0.1, 10, False), (0.04, 10, True), (0.03, 6, True)],
)
def test_a_rare_class_set_is_rare_against_balance_too(share, k, rare):
    assert is_rare_class_set({"rarest_class_share": share, "n_classes": k}) is rare


def test_the_peer_tally_counts_runs_best_peers_and_failures():
    from benchmarks.bench_page import peer_tally

    res = results([[0.5, 0.5, 0.5]] * 2, [[0.6, 0.6, 0.6]] * 2)
    a_best = {
        "strategies": {
            "a": {"labels": LABELS, "scores": [[0.7] * 3] * 2},
            "b": {"labels": LABELS, "scores": [[0.4] * 3] * 2},
        },
        "failed": {"c": "TypeError: Sparse data was passed"},
    }
    b_best = {"strategies": {"b": {"labels": LABELS, "scores": [[0.8] * 3] * 2}}, "failed": {}}
    lines = peer_tally([(res, a_best), (res, b_best), (res, None)])
    assert lines[2:] == [
        "| `a` | 1 | 1 | 0 |",
        "| `b` | 2 | 1 | 0 |",
        "| `c` | 0 | 0 | 1 (TypeError) |",
    ]
    assert peer_tally([(res, None)]) == []


def test_the_regressor_batch_section_pairs_each_setting_with_random(tmp_path):
    from benchmarks.bench_page import regressor_batch

    assert regressor_batch(tmp_path / "regression") == []  # nothing run: no section
    res = results([[3.0, 2.0, 2.0]] * 3, [[3.0, 1.5, 1.5]] * 3)  # RMSE: lower is better
    res["metric"] = "rmse"
    res["strategies"]["hybrid:informativeness=variance"] = {
        "labels": LABELS,
        "scores": [[3.0, 2.5, 2.5]] * 3,
    }
    (tmp_path / "regression" / "abalone").mkdir(parents=True)
    (tmp_path / "regression" / "abalone" / "results.json").write_text(json.dumps(res))
    text = "\n".join(regressor_batch(tmp_path / "regression"))
    # AULC (trapezoid over 20..60, per label): hybrid 1.875 vs random 2.25 -> -0.375, a win
    # (lower RMSE); the old batch 2.625 -> +0.375, a loss; its saving was never recorded
    assert (
        "| abalone | -0.3750 [-0.3750, -0.3750] win, 25% | +0.3750 [+0.3750, +0.3750] loss, never |"
        in text
    )
