"""Holdout metrics against hand-computed values."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tasks.annotation.boxes import Box
from tasks.model.metrics import (
    METRICS,
    evaluate_classifier,
    evaluate_regressor,
    expected_calibration_error,
    higher_is_better,
    reliability_curve,
)
from tasks.model.monitor import (
    calibration_check,
    class_balance,
    group_metrics,
    next_random_fraction,
)
from tasks.model.plots import (
    plot_confusion_matrix,
    plot_learning_curve,
    plot_reliability_diagram,
)
from tasks.settings import EvaluateSettings, MonitorSettings

pytestmark = pytest.mark.model

# Four rows, all of true class "a" (column 0), 15 bins of width 1/15 = 0.0667:
#   row  probas        top conf  top-label bin        correct
#   A    [0.95, 0.05]  0.95      14 (0.933, 1.000]    yes
#   B    [0.25, 0.75]  0.75      11 (0.733, 0.800]    no
#   C    [0.62, 0.38]  0.62       9 (0.600, 0.667]    yes
#   D    [0.36, 0.64]  0.64       9 (0.600, 0.667]    no
# top-label ECE = 1/4 * (|1 - 0.95| + |0 - 0.75| + |(1 + 0) - (0.62 + 0.64)|)
#               = 1/4 * (0.05 + 0.75 + 0.26) = 0.265
# (without binning, the mean |correct - conf| would be 0.455: C and D share a bin.)
# class-wise: class a has p = .95, .25, .62, .36 in bins 14, 3, 9, 5 (one row each), outcome 1:
#   (0.05 + 0.75 + 0.38 + 0.64) / 4 = 0.455; class b has p = .05, .75, .38, .64 in bins 0, 11, 5, 9,
#   outcome 0: (0.05 + 0.75 + 0.38 + 0.64) / 4 = 0.455; mean over classes = 0.455.
PROBAS = np.array([[0.95, 0.05], [0.25, 0.75], [0.62, 0.38], [0.36, 0.64]])
Y = np.array(["a", "a", "a", "a"])
CLASSES = np.array(["a", "b"])


def test_top_label_ece_matches_the_hand_computed_value() -> None:
    ece = expected_calibration_error(Y, PROBAS, n_bins=15, kind="top_label", classes=CLASSES)
    assert ece == pytest.approx(0.265)


def test_classwise_ece_matches_the_hand_computed_value() -> None:
    ece = expected_calibration_error(Y, PROBAS, n_bins=15, kind="classwise", classes=CLASSES)
    assert ece == pytest.approx(0.455)


def test_ece_is_zero_for_a_perfectly_calibrated_bin() -> None:
    # ten rows at confidence 0.7, seven of them right: accuracy 0.7 = confidence in the one bin
    probas = np.tile([0.7, 0.3], (10, 1))
    y = np.array([0] * 7 + [1] * 3)
    assert expected_calibration_error(y, probas) == pytest.approx(0.0, abs=1e-12)


def test_reliability_curve_counts_rows_per_bin() -> None:
    curve = reliability_curve(Y, PROBAS, 15, CLASSES)
    assert curve["count"][9] == 2 and curve["count"].sum() == 4
    assert curve["accuracy"][9] == pytest.approx(0.5)
    assert curve["confidence"][9] == pytest.approx(0.63)


def test_evaluate_classifier_reports_the_rare_class_on_its_own() -> None:
    classes = np.array(["common", "rare"])
    y = np.array(["common"] * 8 + ["rare"] * 2)
    # all common rows right; one of the two rare rows missed
    probas = np.array([[0.9, 0.1]] * 8 + [[0.2, 0.8], [0.6, 0.4]])
    metrics = evaluate_classifier(y, probas, classes)
    assert metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["recall_common"] == pytest.approx(1.0)
    assert metrics["recall_rare"] == pytest.approx(0.5)
    assert metrics["rare_class_recall"] == pytest.approx(0.5)
    # Brier: 8 * 2*0.1^2 + 2*0.2^2 + 2*0.6^2 = 0.16 + 0.08 + 0.72 = 0.96 over 10 rows
    assert metrics["brier"] == pytest.approx(0.096)
    expected_ll = -(8 * np.log(0.9) + np.log(0.8) + np.log(0.4)) / 10
    assert metrics["log_loss"] == pytest.approx(expected_ll)
    assert set(metrics) >= {"macro_f1", "ece_top_label", "ece_classwise"}


def test_evaluate_regressor_coverage_from_bounds_and_from_std() -> None:
    y = np.array([0.0, 1.0, 2.0, 10.0])
    pred = np.array([0.0, 1.5, 2.0, 2.0])
    by_bounds = evaluate_regressor(y, pred, lower=pred - 1, upper=pred + 1)
    assert by_bounds["rmse"] == pytest.approx(np.sqrt((0.25 + 64) / 4))
    assert by_bounds["mae"] == pytest.approx(8.5 / 4)
    assert by_bounds["interval_coverage"] == pytest.approx(0.75)
    # std 1 at level 0.9: half-width 1.645, so the 0.5 miss is covered and the 8.0 miss is not
    by_std = evaluate_regressor(y, pred, y_std=np.ones(4), level=0.9)
    assert by_std["interval_coverage"] == pytest.approx(0.75)
    assert by_std["interval_width"] == pytest.approx(2 * 1.6449, abs=1e-3)


# one small (y_true, y_pred) per kind of prediction a table metric scores
TABLE_CASES = {
    "labels": (np.array(["a", "a", "b"]), np.array(["a", "b", "b"])),
    "probas": (np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])),
    "values": (np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0])),
    "intervals": (np.array([1.0, 2.0, 3.0]), np.array([[0.0, 2.0], [2.5, 3.0], [2.0, 4.0]])),
    "tags": ([["B-x", "O"]], [["B-x", "B-x"]]),
    "regions": (
        [[Box("x", 0, 0, 4, 4)], []],
        [[Box("x", 0, 0, 4, 4, 0.9), Box("x", 9, 9, 1, 1, 0.5)], []],
    ),
}


def test_every_metric_in_the_table_has_a_direction_and_a_scorer() -> None:
    choices = set(get_args(EvaluateSettings.model_fields["metric"].annotation)) - {"auto"}
    assert choices <= set(METRICS)  # every metric a champion can be chosen on ("auto": resolved)
    from tasks.data.profile import DEFAULT_METRIC

    assert set(DEFAULT_METRIC.values()) <= choices  # what "auto" resolves to is a choice too
    for name, entry in METRICS.items():
        assert isinstance(entry.higher_is_better, bool), name
        assert higher_is_better(name) is entry.higher_is_better, name
        value = entry.score(*TABLE_CASES[entry.takes])
        assert isinstance(value, float) and np.isfinite(value), name
    assert not higher_is_better("rmse") and not higher_is_better("ece_top_label")
    assert higher_is_better("recall_rare")  # per-class recalls are outside the table


def test_table_scorers_for_macro_f1_and_accuracy_equal_scikit_learn() -> None:
    y = np.array(["cat", "cat", "dog", "dog", "bird"])
    pred = np.array(["cat", "dog", "dog", "dog", "cat"])
    # F1 per class: cat P = R = 1/2 -> 0.5; dog P = 2/3, R = 1 -> 0.8; bird never predicted -> 0
    assert METRICS["macro_f1"].score(y, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert METRICS["macro_f1"].score(y, pred) == f1_score(y, pred, average="macro", zero_division=0)
    assert METRICS["accuracy"].score(y, pred) == pytest.approx(3 / 5)
    assert METRICS["accuracy"].score(y, pred) == accuracy_score(y, pred)


def test_plots_are_written_as_png(tmp_path) -> None:
    paths = [
        plot_reliability_diagram(Y, PROBAS, tmp_path / "rel.png", classes=CLASSES),
        plot_confusion_matrix(Y, CLASSES[PROBAS.argmax(1)], CLASSES, tmp_path / "cm.png"),
        plot_learning_curve({"accuracy": [(10, 0.5), (20, 0.7)]}, tmp_path / "lc.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_group_metrics_hand_computed_parity_and_recall_gap() -> None:
    # group g1 predicts "yes" 3/4 of the time, g2 1/4: parity difference 0.5
    y_true = np.array(["yes", "yes", "no", "no", "yes", "yes", "no", "no"])
    y_pred = np.array(["yes", "yes", "yes", "no", "yes", "no", "no", "no"])
    groups = np.array(["g1"] * 4 + ["g2"] * 4)
    result = group_metrics(y_true, y_pred, groups, ["no", "yes"])
    assert result["demographic_parity_difference"] == pytest.approx(0.5)
    # g1 recall: yes 2/2, no 1/2 -> 0.75; g2 recall: yes 1/2, no 2/2 -> 0.75; gap 0
    assert result["groups"]["g1"]["recall"] == pytest.approx(0.75)
    assert result["recall_gap"] == pytest.approx(0.0)


def test_class_balance_flags_a_skewed_labeled_set_only() -> None:
    settings = MonitorSettings(max_class_balance_distance=0.2)
    pool_pred = ["a"] * 50 + ["b"] * 50
    skewed = class_balance(["a"] * 9 + ["b"], pool_pred, ["a", "b"], max_distance=0.2)
    assert skewed.flagged and skewed.value == pytest.approx(0.4)
    balanced = class_balance(["a"] * 5 + ["b"] * 5, pool_pred, ["a", "b"], max_distance=0.2)
    assert not balanced.flagged
    assert settings.max_class_balance_distance == 0.2


def test_calibration_trend_flags_a_rise_in_ece() -> None:
    settings = MonitorSettings(max_ece=0.2, max_ece_increase=0.05)
    assert not calibration_check(0.06, [0.05, 0.04], settings).flagged
    assert calibration_check(0.12, [0.05, 0.04], settings).flagged  # +0.08 over the last round
    assert calibration_check(0.25, [], settings).flagged  # above max_ece


def test_random_fraction_rises_only_after_a_drift_flag() -> None:
    from tasks.model.monitor import Check, MonitorResult

    settings = MonitorSettings(random_fraction_on_drift=0.3)
    drift = MonitorResult((Check("sampling_bias", True, 0.5, 0.3, ""),))
    calm = MonitorResult((Check("sampling_bias", False, 0.0, 0.3, ""),))
    fairness_only = MonitorResult((Check("group_recall", True, 0.4, 0.2, ""),))
    assert next_random_fraction(0.1, drift, settings) == 0.3
    assert next_random_fraction(0.1, calm, settings) == 0.1
    assert next_random_fraction(0.1, fairness_only, settings) == 0.1
    assert next_random_fraction(0.5, drift, settings) == 0.5


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "margin", "expected"),
    [
        ("macro_f1", 0.80, 0.70, 0.05, True),  # higher is better, gain 0.10 > 0.05
        ("macro_f1", 0.73, 0.70, 0.05, False),  # gain within the margin
        ("accuracy", 0.60, 0.70, 0.0, False),
        ("log_loss", 0.30, 0.40, 0.05, True),  # lower is better
        ("log_loss", 0.50, 0.40, 0.0, False),
        ("ece_top_label", 0.05, 0.08, 0.0, True),
        ("rmse", 1.2, 1.0, 0.0, False),
        ("macro_f1", 0.70, 0.70, 0.0, False),  # a tie keeps the champion
        ("macro_f1", 0.10, None, 0.0, True),  # no champion yet
        ("macro_f1", float("nan"), 0.5, 0.0, False),
    ],
)
def test_champion_rule_is_direction_and_margin_aware(
    metric, challenger, champion, margin, expected
) -> None:
    from tasks.model.registry import is_better

    assert is_better(challenger, champion, metric, margin) is expected


def test_entity_f1_counts_whole_entities_by_span_and_type() -> None:
    from tasks.model.metrics import entity_f1, entity_spans

    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "I-ORG"]) == {
        (0, 2, "PER"),
        (3, 4, "LOC"),
        (4, 5, "ORG"),  # an I- that does not continue its type starts an entity
    }
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert entity_f1(gold, gold) == 1.0
    # a truncated entity is wrong as a whole (token F1 would give it partial credit)
    half = [["B-PER", "O", "O", "B-LOC"]]
    assert entity_f1(gold, half) == 0.5  # 1 of 2 predicted right, 1 of 2 gold found
    assert entity_f1([["O", "O"]], [["O", "O"]]) == 0.0
