"""Token tagging in the benchmark: the token_f1 metric, the per-token model, the results schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.benchmark.curves import BenchmarkConfig, make_metric, run_benchmark
from tasks.benchmark.problems import BenchmarkError, Problem
from tasks.model.metrics import token_f1
from tasks.model.tagger import TokenTagger, as_items

pytestmark = pytest.mark.unit


def test_token_f1_hand_computed_counts_only_entity_tokens():
    gold = [["B-person", "I-person", "O", "O"], ["O", "B-geo-loc"]]
    pred = [["B-person", "O", "O", "B-company"], ["O", "B-person"]]
    # true positives: 1 (B-person); predicted non-O: 3; gold non-O: 3 -> P = R = 1/3, F1 = 1/3.
    # The three O/O tokens count for nothing (plain token accuracy would be 4/6).
    assert token_f1(gold, pred) == pytest.approx(1 / 3)
    assert token_f1(gold, gold) == pytest.approx(1.0)
    assert token_f1([["O", "O"]], [["O", "O"]]) == 0.0


def test_token_f1_wrong_type_or_prefix_is_an_error_on_both_sides():
    # B-person predicted as I-person: not a true positive, counts as a false positive and a miss
    assert token_f1([["B-person", "B-person"]], [["I-person", "B-person"]]) == pytest.approx(0.5)


def _toy_sentences(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(seed)
    names, words = ["Alice", "Bob", "Carol", "Dave"], ["went", "to", "the", "shop", "today", "ok"]
    X, y = [], []
    for _ in range(n):
        toks = [str(w) for w in rng.choice(words, size=rng.integers(2, 6))]
        tags = ["O"] * len(toks)
        at = int(rng.integers(0, len(toks) + 1))
        toks.insert(at, str(rng.choice(names)))
        tags.insert(at, "B-person")
        X.append(toks)
        y.append(tags)
    return X, y


def test_tagger_returns_one_proba_array_per_sentence():
    X, y = _toy_sentences(30, 0)
    model = TokenTagger(random_state=0).fit(as_items(X), as_items(y))
    probas = model.predict_proba(as_items(X[:3]))
    assert [p.shape for p in probas] == [(len(s), 2) for s in X[:3]]
    assert token_f1(y, model.predict(as_items(X))) > 0.9


def test_token_benchmark_writes_the_shared_results_schema(tmp_path):
    X, y = _toy_sentences(80, 1)
    problem = Problem("toy_ner", as_items(X), as_items(y), "tokens")
    config = BenchmarkConfig(
        strategies=["random", "sequence_margin_max", "sequence_margin_sum"],
        seeds=2,
        initial=4,
        batch_size=4,
        budget=16,
        metric="token_f1",
        n_jobs=1,
    )
    results = run_benchmark(problem, config, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metric"] == "token_f1" and saved["dataset"] == "toy_ner"
    assert set(saved["strategies"]) == {"random", "sequence_margin_max", "sequence_margin_sum"}
    for info in saved["strategies"].values():
        assert info["labels"] == [4, 8, 12, 16]
        assert np.array(info["scores"]).shape == (2, 4)
        assert set(info["labels_to_target"]) == {"0.95", "0.99"}
    assert set(saved["savings_vs_random"]) == set(saved["strategies"])
    assert 0.0 <= results["full_data_score"] <= 1.0
    assert (tmp_path / "learning_curves.png").exists() and (tmp_path / "summary.md").exists()


def test_token_problem_rejects_classification_metrics_and_strategies(tmp_path):
    problem = Problem("toy_ner", as_items([["a"]]), as_items([["O"]]), "tokens")
    with pytest.raises(BenchmarkError, match="does not fit a tokens problem"):
        make_metric("accuracy", problem)
    config = BenchmarkConfig(strategies=["margin"], seeds=1, metric="token_f1")
    with pytest.raises(BenchmarkError, match="sequence_margin_max"):
        run_benchmark(problem, config, tmp_path)
