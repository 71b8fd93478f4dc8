"""Weak supervision, its pure parts: labeling functions (decorator, votes, errors that name the
function and the row), label models (majority, Dawid-Skene with abstain, Snorkel), the report's
coverage / overlaps / conflicts / accuracy, the weak-disagreement score, and the settings rule
that a votes strategy needs functions. Hand-computed cases and hypothesis properties."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import labelwise
import strategies
from strategies.weak import WeakDisagreement, uses_votes, vote_disagreement, with_votes
from tasks.weak.functions import (
    LabelingFunctionError,
    Row,
    apply_functions,
    load_functions,
)
from tasks.weak.label_model import make_label_model
from tasks.weak.report import coverage_stats, lf_report

pytestmark = pytest.mark.unit

A = -1  # abstain


@labelwise.labeling_function(name="has_free", label="spam")
def has_free(row):
    return "free" in row.text


@labelwise.labeling_function()
def greeting(row):
    return "ham" if row["text"].startswith("hi") else None


ITEMS = pd.DataFrame(
    {"id": ["a", "b", "c", "d"], "text": ["free cash", "hi there", "hi free", "x"]}
)


# -- labeling functions ---------------------------------------------------------------------


def test_votes_are_class_indices_with_abstain():
    votes = apply_functions([has_free, greeting], ITEMS, ["ham", "spam"])
    assert votes.functions == ["has_free", "greeting"]
    assert votes.matrix.tolist() == [[1, A], [A, 0], [1, 0], [A, A]]
    assert list(votes.ids) == ["a", "b", "c", "d"]


def test_a_declared_label_takes_true_or_the_label_and_rejects_another():
    assert has_free.vote(True) == "spam" and has_free.vote("spam") == "spam"
    assert has_free.vote(False) is None and has_free.vote(None) is None
    with pytest.raises(ValueError, match="votes for 'spam' only"):
        has_free.vote("ham")
    with pytest.raises(ValueError, match="declare the one label"):
        greeting.vote(True)


def test_a_row_reads_columns_by_key_and_attribute_and_names_a_missing_one():
    row = Row({"text": "hi", "n": 3})
    assert row.text == row["text"] == "hi"
    with pytest.raises(AttributeError, match=r"no column 'body' \(columns: text, n\)"):
        _ = row.body


def test_a_function_raising_on_some_rows_abstains_there_and_the_rows_are_reported():
    @labelwise.labeling_function(label="spam")
    def fragile(row):
        if row.text == "x":
            raise KeyError("boom")
        return "free" in row.text

    votes = apply_functions([fragile], ITEMS, ["ham", "spam"])
    assert votes.matrix[:, 0].tolist() == [1, A, 1, A]
    assert votes.n_errors == {"fragile": 1}
    assert [(e.function, e.id) for e in votes.errors] == [("fragile", "d")]
    assert "KeyError" in votes.errors[0].error


def test_a_function_raising_on_every_row_is_an_error_naming_it_and_the_first_row():
    @labelwise.labeling_function(label="spam")
    def broken(row):
        return row.body  # no such column

    with pytest.raises(
        LabelingFunctionError, match=r"'broken' raised on every item \(4\); on item 'a'"
    ):
        apply_functions([broken], ITEMS, ["ham", "spam"])


def test_a_label_outside_the_classes_is_an_error_naming_function_item_and_value():
    @labelwise.labeling_function()
    def odd(row):
        return "eggs"

    with pytest.raises(
        LabelingFunctionError, match=r"'odd' returned 'eggs' for item 'a'.*\['ham', 'spam'\]"
    ):
        apply_functions([odd], ITEMS, ["ham", "spam"])


def _module(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_module_file_loads_its_functions_in_order_and_a_subset_by_name(tmp_path):
    path = _module(
        tmp_path,
        "lfs",
        """
        import labelwise

        @labelwise.labeling_function(name="b_rule", label="x")
        def b(row):
            return True

        @labelwise.labeling_function(label="y")
        def a_rule(row):
            return True

        def helper(row):  # not a labeling function
            return "x"
        """,
    )
    assert [f.name for f in load_functions(str(path))] == ["b_rule", "a_rule"]
    assert [f.name for f in load_functions(str(path), ["a_rule"])] == ["a_rule"]
    with pytest.raises(
        LabelingFunctionError, match=r"\['nope'\] not in .*defines \['a_rule', 'b_rule'\]"
    ):
        load_functions(str(path), ["nope"])
    # relative to the project root, as params.yaml names it
    assert len(load_functions("lfs.py", root=tmp_path)) == 2


def test_a_module_that_does_not_import_is_named_with_the_line(tmp_path):
    bad = _module(tmp_path, "bad_syntax", "def f(:\n    pass\n")
    with pytest.raises(LabelingFunctionError, match=r"does not import: .*bad_syntax.py, line 1"):
        load_functions(str(bad))
    raising = _module(tmp_path, "bad_import", "import not_a_module_here\n")
    with pytest.raises(LabelingFunctionError, match=r"ModuleNotFoundError.*not_a_module_here"):
        load_functions(str(raising))
    with pytest.raises(LabelingFunctionError, match="no such file"):
        load_functions(str(tmp_path / "missing.py"))
    with pytest.raises(LabelingFunctionError, match="does not import"):
        load_functions("no_such_package.lfs")
    empty = _module(tmp_path, "empty", "x = 1\n")
    with pytest.raises(LabelingFunctionError, match="defines no labeling function"):
        load_functions(str(empty))


def test_two_functions_with_one_name_are_an_error(tmp_path):
    path = _module(
        tmp_path,
        "dupes",
        """
        import labelwise
        f = labelwise.labeling_function(name="same", label="x")(lambda row: True)
        g = labelwise.labeling_function(name="same", label="y")(lambda row: True)
        """,
    )
    with pytest.raises(LabelingFunctionError, match="two labeling functions are named 'same'"):
        load_functions(str(path))


# -- label models ---------------------------------------------------------------------------

VOTES = np.array([[0, 0, A], [0, 1, A], [1, 1, 1], [A, A, A], [A, 1, A]])


def test_majority_gives_vote_shares_ties_split_and_nan_without_votes():
    proba = make_label_model("majority").fit(VOTES, 2).predict_proba(VOTES)
    np.testing.assert_allclose(proba[[0, 1, 2, 4]], [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
    assert np.isnan(proba[3]).all()


def _generated(n=6000, seed=0):
    """Three one-sided functions with known coverage and accuracy on a 30/70 class mix."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)  # class 1 is the rarer one
    votes = np.full((n, 3), A)
    # f0 votes 1, fires on 80% of the 1s and on 5% of the 0s; f1 votes 1, noisy
    votes[:, 0] = np.where(rng.random(n) < np.where(y == 1, 0.8, 0.05), 1, A)
    votes[:, 1] = np.where(rng.random(n) < np.where(y == 1, 0.5, 0.3), 1, A)
    # f2 votes 0, fires on 60% of the 0s and on 5% of the 1s
    votes[:, 2] = np.where(rng.random(n) < np.where(y == 0, 0.6, 0.05), 0, A)
    return votes, y


def _true_accuracy(votes, y):
    return np.array([(votes[votes[:, j] != A, j] == y[votes[:, j] != A]).mean() for j in range(3)])


def test_dawid_skene_with_abstain_recovers_one_sided_functions_accuracies():
    votes, y = _generated()
    model = make_label_model("dawid_skene").fit(votes, 2)
    np.testing.assert_allclose(model.accuracies(), _true_accuracy(votes, y), atol=0.05)
    proba = model.predict_proba(votes)
    voted = ~np.isnan(proba).any(axis=1)
    ds = (proba[voted].argmax(axis=1) == y[voted]).mean()
    majority = make_label_model("majority").fit(votes, 2).predict_proba(votes)
    # majority cannot tell f1's noisy votes from f0's sure ones; the model weighs them
    assert ds > (majority[voted].argmax(axis=1) == y[voted]).mean() + 0.02


def test_snorkel_fits_the_same_interface():
    votes, y = _generated(n=3000, seed=1)
    model = make_label_model("snorkel", seed=0).fit(votes, 2)
    proba = model.predict_proba(votes)
    voted = ~np.isnan(proba).any(axis=1)
    assert np.isnan(proba[~voted]).all()
    np.testing.assert_allclose(proba[voted].sum(axis=1), 1.0)
    assert (proba[voted].argmax(axis=1) == y[voted]).mean() > 0.75
    assert model.accuracies().shape == (3,)


def test_an_unknown_label_model_is_named():
    with pytest.raises(ValueError, match="unknown label model 'flip'"):
        make_label_model("flip")


# -- the report -----------------------------------------------------------------------------


def test_coverage_overlaps_and_conflicts_by_hand():
    stats = coverage_stats(VOTES)
    # f0 votes rows 0,1,2; f1 rows 0,1,2,4; f2 row 2
    np.testing.assert_allclose(stats["coverage"], [3 / 5, 4 / 5, 1 / 5])
    np.testing.assert_allclose(stats["overlaps"], [3 / 5, 3 / 5, 1 / 5])
    # row 1: f0 says 0, f1 says 1; row 2: all say 1
    np.testing.assert_allclose(stats["conflicts"], [1 / 5, 1 / 5, 0])


def test_the_report_measures_accuracy_on_human_labels_and_drops_by_the_thresholds():
    votes = apply_functions([has_free, greeting], ITEMS, ["ham", "spam"])
    human = {"a": "spam", "b": "ham", "c": "ham"}  # has_free right on a, wrong on c
    report = lf_report(votes, human, min_accuracy=0.6, min_evaluated=2).set_index("function")
    assert report.loc["has_free", "accuracy_human"] == 0.5
    assert report.loc["has_free", "n_human"] == 2
    assert report.loc["greeting", "accuracy_human"] == 1.0
    assert (
        not report.loc["has_free", "kept"]
        and "accuracy 0.500 on 2 human labels" in report.loc["has_free", "why"]
    )
    assert report.loc["greeting", "kept"]
    # too few evaluated labels: kept whatever its accuracy so far
    assert lf_report(votes, human, min_accuracy=0.6, min_evaluated=3)["kept"].all()
    low = lf_report(votes, human, min_coverage=0.6).set_index("function")
    assert low.loc["greeting", "why"].startswith("coverage 0.500 < weak.min_coverage 0.6")


# -- the weak-disagreement score ------------------------------------------------------------


def test_vote_disagreement_by_hand():
    # K = 2: all abstain -> 1; 2-2 tie -> 1; three agree -> (1 - 4/5) / 0.5 = 0.4
    votes = np.array([[A, A, A, A], [0, 1, 0, 1], [1, 1, 1, A], [0, A, A, A]])
    np.testing.assert_allclose(vote_disagreement(votes, 2), [1.0, 1.0, 0.4, (1 - 2 / 3) / 0.5])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(-1, 2), min_size=1, max_size=6),
    st.integers(0, 2),
)
def test_one_more_vote_for_the_leading_class_never_raises_disagreement(row, k):
    votes = np.array([row])
    counts = np.bincount(votes[votes >= 0], minlength=3)
    leader = int(counts.argmax()) if counts.sum() else k
    more = np.array([[*row, leader]])
    before, after = vote_disagreement(votes, 3)[0], vote_disagreement(more, 3)[0]
    assert 0.0 <= after <= before <= 1.0 + 1e-12


class _Fixed:
    classes_ = np.array(["ham", "spam"])

    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X):
        return self.proba[np.asarray(X[:, 0], dtype=int)]


def test_the_strategy_asks_where_functions_are_silent_or_split_chunk_by_chunk():
    votes = np.array([[1, 1], [A, A], [0, 0], [0, 1], [1, A], [0, A]])
    X = np.arange(6, dtype=float)[:, None]
    model = _Fixed(np.full((6, 2), 0.5))  # the model knows nothing: the votes decide
    strategy = strategies.get("weak_disagreement", votes=votes, n_classes=2, model_weight=0.0)
    for chunk_size in (6, 4, 1):  # the votes follow the pool rows across chunks
        picks = strategy.select(model, X, 2, chunk_size=chunk_size)
        assert sorted(picks.tolist()) == [1, 3]
    # the model's margin decides between rows the votes score alike
    proba = np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]])
    mixed = strategies.get("weak_disagreement", votes=votes, n_classes=2, model_weight=0.5)
    assert mixed.select(_Fixed(proba), X, 1).tolist() == [3]
    with pytest.raises(ValueError, match="votes for 6 rows, the pool has 5"):
        strategy.select(model, X[:5], 1)


def test_votes_reach_hybrid_and_the_strategy_itself_and_nothing_else():
    votes = np.zeros((3, 2), dtype=int)
    assert with_votes("weak_disagreement", {}, votes, 2)["n_classes"] == 2
    bound = with_votes("hybrid", {"informativeness": "weak_disagreement"}, votes, 2)
    assert isinstance(bound["informativeness"], WeakDisagreement)
    assert bound["informativeness"].votes is votes
    assert with_votes("margin", {}, votes, 2) == {}
    assert uses_votes("hybrid", {"informativeness": "weak_disagreement"})
    assert not uses_votes("hybrid", {})
    strategy = strategies.get("hybrid", **bound)
    X = np.random.default_rng(0).normal(size=(3, 2))
    labels = strategy.select(_Fixed(np.full((3, 2), 0.5)), X, 2, exclude=None)
    assert len(set(labels.tolist())) == 2


def test_a_votes_strategy_without_functions_is_a_settings_error():
    from tasks.settings import Settings, SettingsError, with_overrides

    with pytest.raises(SettingsError, match=r"set weak\.module"):
        with_overrides(Settings(), ["strategy.name=weak_disagreement"])
    with pytest.raises(SettingsError, match=r"set weak\.module"):
        with_overrides(Settings(), ["strategy.params={informativeness: weak_disagreement}"])
    ok = with_overrides(Settings(), ["strategy.name=weak_disagreement", "weak.module=lfs.py"])
    assert ok.weak.module == "lfs.py"


def test_labeling_functions_on_a_regression_project_are_refused(make_settings):
    from tasks.weak.rounds import weak_votes

    settings = make_settings(model={"task": "regression"}, weak={"module": "lfs.py"})
    with pytest.raises(LabelingFunctionError, match=r"vote classes.*model\.task is regression"):
        weak_votes(settings, ITEMS, ITEMS.iloc[:0].assign(label=[]))


def test_votes_are_cached_per_item_and_function_version(make_settings, tmp_path):
    from tasks.weak.rounds import cached_votes

    settings = make_settings()
    calls: list[str] = []

    @labelwise.labeling_function(label="spam")
    def counted(row):
        calls.append(row.id)
        return "free" in row.text

    first = cached_votes(settings, [counted], ITEMS, ["ham", "spam"])
    assert first.matrix[:, 0].tolist() == [1, A, 1, A] and len(calls) == 4
    again = cached_votes(settings, [counted], ITEMS, ["ham", "spam"])
    assert again.matrix.tolist() == first.matrix.tolist() and len(calls) == 4  # nothing rerun
    more = pd.concat([ITEMS, pd.DataFrame({"id": ["e"], "text": ["free"]})], ignore_index=True)
    grown = cached_votes(settings, [counted], more, ["ham", "spam"])
    assert grown.matrix[:, 0].tolist() == [1, A, 1, A, 1] and calls[4:] == ["e"]  # only the new

    @labelwise.labeling_function(name="counted", label="spam")
    def changed(row):  # same name, new code: a new version, every item voted again
        calls.append(row.id)
        return "cash" in row.text

    assert cached_votes(settings, [changed], more, ["ham", "spam"]).matrix[:, 0].tolist() == [
        1, A, A, A, A,
    ]  # fmt: skip
    assert len(calls) == 10


def test_the_bandit_takes_weak_disagreement_as_an_arm_with_the_votes():
    votes = np.array([[1, 1], [A, A], [0, 0], [0, 1], [1, A], [0, A]])
    params = with_votes("auto", {"arms": ["weak_disagreement"]}, votes, 2)
    assert uses_votes("auto", {"arms": ["random", "weak_disagreement"]})
    assert not uses_votes("auto", {"arms": ["random", "margin"]})
    assert params["arm_params"]["weak_disagreement"]["votes"] is votes
    params["arm_params"]["weak_disagreement"]["model_weight"] = 0.0
    bandit = strategies.get("auto", **params)
    X = np.arange(6, dtype=float)[:, None]
    for seed in range(20):
        chosen = bandit.clone().query(_Fixed(np.full((6, 2), 0.5)), X, 2, random_state=seed)
        from_arm = chosen.indices[chosen.sources == "weak_disagreement"]
        # the settled rows (0, 2: two functions agree) score lowest; without the votes every row
        # would tie and row 0 would come first
        assert len(from_arm) >= 1 and not {0, 2} & set(from_arm.tolist())
