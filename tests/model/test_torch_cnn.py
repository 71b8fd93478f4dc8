"""``model.kind: torch_cnn``: the CNN learns digit images, is seeded, pickles, and brings its own
committees (MC dropout, a seed ensemble) to ``bald``."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.base import clone
from sklearn.datasets import load_digits

import strategies
from tasks.model.build import build_model, fit_model
from tasks.settings import ModelSettings

torch = pytest.importorskip(
    "torch", reason="the torch extra is not installed: pip install torch==2.13.0"
)
from tasks.model.torch_cnn import TorchCNNClassifier, resolve_device  # noqa: E402

pytestmark = pytest.mark.model

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits as the loop's image featurizer gives them: [0, 1] grey, row by row;
    labels as names whose sorted order is not the digits' order."""
    bunch = load_digits()
    X = (bunch.images.reshape(len(bunch.images), -1) / 16.0).astype(np.float32)
    return X, NAMES[bunch.target]


def per_class(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in NAMES])


@pytest.fixture(scope="module")
def fitted(digits) -> tuple[TorchCNNClassifier, np.ndarray, np.ndarray]:
    """A CNN fit on 200 labels (20 per class); the rows it did not see."""
    X, y = digits
    train = per_class(y, 20)
    rest = np.setdiff1d(np.arange(len(y)), train)
    return TorchCNNClassifier(random_state=0).fit(X[train], y[train]), X[rest], y[rest]


def test_learns_digit_images_from_200_labels_to_90_percent(fitted) -> None:
    model, X_test, y_test = fitted
    assert model.image_shape_ == (8, 8, 1)  # inferred: 64 columns are a square grey image
    assert np.mean(model.predict(X_test) == y_test) >= 0.90


def test_probabilities_sum_to_one_and_columns_follow_classes(fitted) -> None:
    model, X_test, y_test = fitted
    proba = model.predict_proba(X_test)
    assert list(model.classes_) == sorted(NAMES)  # "eight", "five", ...: not the digits' order
    assert proba.shape == (len(X_test), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    # column k is class classes_[k]: the true class's column is the largest for most rows
    truth = np.searchsorted(model.classes_, y_test)
    assert np.mean(proba.argmax(axis=1) == truth) >= 0.90
    np.testing.assert_array_equal(model.predict(X_test), model.classes_[proba.argmax(axis=1)])


def test_same_seed_same_probabilities_other_seed_other_network(digits) -> None:
    X, y = digits
    rows = per_class(y, 5, seed=1)
    make = lambda seed: TorchCNNClassifier(random_state=seed).fit(X[rows], y[rows])  # noqa: E731
    a, b, c = make(3), make(3), make(4)
    np.testing.assert_array_equal(a.predict_proba(X[:300]), b.predict_proba(X[:300]))
    assert np.abs(a.predict_proba(X[:300]) - c.predict_proba(X[:300])).max() > 1e-3
    # the fit runs on its own torch generator: the caller's random stream is untouched
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make(3)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_mc_dropout_members_differ_while_eval_predictions_are_deterministic(fitted) -> None:
    model, X_test, _ = fitted
    before = model.predict_proba(X_test[:200])
    committee = model.query_committee(5, random_state=7)
    members = committee.member_probas(X_test[:200])
    assert members.shape == (model.mc_samples, 200, 10)  # mc_samples passes, not n_members
    np.testing.assert_allclose(members.sum(axis=2), 1.0, atol=1e-5)
    assert np.abs(members[0] - members[1]).max() > 0.05  # dropout on: passes disagree
    assert strategies.mutual_information(members).max() > 0.01
    np.testing.assert_array_equal(model.predict_proba(X_test[:200]), before)  # dropout off again
    assert not model.module_.training
    again = model.query_committee(5, random_state=7).member_probas(X_test[:200])
    np.testing.assert_array_equal(members, again)  # seeded passes


def test_bald_uses_dropout_passes_without_refitting(fitted, digits, monkeypatch) -> None:
    model, X_test, _ = fitted
    X, y = digits
    labeled = per_class(y, 20)
    fits = []
    original = TorchCNNClassifier.fit
    monkeypatch.setattr(
        TorchCNNClassifier, "fit", lambda self, *a, **k: fits.append(1) or original(self, *a, **k)
    )
    picks = strategies.get("bald", n_members=3).select(
        model, X_test[:300], 10, X_labeled=X[labeled], y_labeled=y[labeled], random_state=0
    )
    assert picks.shape == (10,) and np.unique(picks).size == 10
    assert fits == []  # a bootstrap committee would have refit 3 networks

    ensemble = clone(model).set_params(committee="ensemble", epochs=5, min_steps=40)
    ensemble.fit(X[labeled], y[labeled])
    fits.clear()
    members = ensemble.query_committee(3, X[labeled], y[labeled], random_state=1)
    assert len(fits) == 2 and members.members[0] is ensemble  # itself and 2 other seeds
    probas = members.member_probas(X_test[:100])
    assert probas.shape == (3, 100, 10)
    assert np.abs(probas[1] - probas[2]).max() > 0.05  # other seeds: other networks
    fits.clear()
    strategies.get("qbc_vote_entropy", n_members=3).select(
        ensemble, X_test[:100], 5, X_labeled=X[labeled], y_labeled=y[labeled], random_state=0
    )
    assert len(fits) == 2


def test_clone_and_pickle_round_trips_predict_the_same(fitted) -> None:
    model, X_test, _ = fitted
    params = model.get_params()
    copy = clone(model)
    assert copy.get_params() == params and not hasattr(copy, "module_")
    expected = model.predict_proba(X_test)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        blob = dumps(model)
        loaded = pickle.loads(blob)
        np.testing.assert_array_equal(loaded.predict_proba(X_test), expected)
        np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
        assert hasattr(model, "module_")  # pickling left the original alone
    members = pickle.loads(pickle.dumps(model)).query_committee(2, random_state=7)
    np.testing.assert_array_equal(
        members.member_probas(X_test[:50]),
        model.query_committee(2, random_state=7).member_probas(X_test[:50]),
    )


def test_device_auto_is_the_cpu_here_and_cuda_is_refused_with_the_fix() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: cuda is a valid device here")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=r"model\.device is .*cuda.*set model\.device to"):
            resolve_device(device)
        with pytest.raises(ValueError, match=r"torch\.cuda\.is_available\(\) is False"):
            build_model(ModelSettings(kind="torch_cnn", device=device))
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("tpu")
    X = np.random.default_rng(0).random((20, 16), dtype=np.float32)
    y = np.repeat(["a", "b"], 10)
    with pytest.raises(ValueError, match=r"model\.device"):
        TorchCNNClassifier(device="cuda", min_steps=1).fit(X, y)
    model = TorchCNNClassifier(device="auto", min_steps=5).fit(X, y)
    assert model.device_ == "cpu" and model.predict_proba(X).shape == (20, 2)


def test_balanced_class_weights_change_the_fit_on_an_imbalanced_set(digits) -> None:
    X, y = digits
    threes, eights = np.flatnonzero(y == "three"), np.flatnonzero(y == "eight")
    train = np.r_[threes[:120], eights[:6]]  # 20:1
    test_eights = eights[6:]

    def recall(class_weight: str | None) -> float:
        model = TorchCNNClassifier(class_weight=class_weight, random_state=0)
        model.fit(X[train], y[train])
        return float(np.mean(model.predict(X[test_eights]) == "eight"))

    balanced, unweighted = recall("balanced"), recall(None)
    assert balanced > unweighted + 0.1  # the rare class is found far more often


def test_sample_weights_reach_the_loss(digits) -> None:
    X, y = digits
    rows = per_class(y, 5, seed=2)
    plain = TorchCNNClassifier(random_state=0).fit(X[rows], y[rows])
    ones = TorchCNNClassifier(random_state=0).fit(X[rows], y[rows], sample_weight=np.ones(50))
    weights = np.where(y[rows] == "one", 20.0, 1.0)
    heavy = fit_model(TorchCNNClassifier(random_state=0), X[rows], y[rows], sample_weight=weights)
    np.testing.assert_allclose(plain.predict_proba(X[:200]), ones.predict_proba(X[:200]))
    column = list(plain.classes_).index("one")
    assert heavy.predict_proba(X)[:, column].mean() > plain.predict_proba(X)[:, column].mean()


def test_image_shape_is_checked_and_non_square_rows_need_it() -> None:
    X = np.random.default_rng(0).random((20, 6 * 4), dtype=np.float32)
    y = np.repeat(["a", "b"], 10)
    with pytest.raises(ValueError, match="image_shape"):
        TorchCNNClassifier(min_steps=1).fit(X, y)
    with pytest.raises(ValueError, match=r"image_shape \(5, 5, 1\) has 25 pixels"):
        TorchCNNClassifier(image_shape=(5, 5), min_steps=1).fit(X, y)
    model = TorchCNNClassifier(image_shape=[6, 4, 1], min_steps=2).fit(X, y)
    assert model.image_shape_ == (6, 4, 1)
    rgb = TorchCNNClassifier(image_shape=(2, 4, 3), min_steps=2).fit(X, y)
    assert rgb.predict_proba(X).shape == (20, 2)


def test_settings_build_the_cnn_for_classification_only() -> None:
    model = build_model(
        ModelSettings(kind="torch_cnn", params={"epochs": 3, "committee": "ensemble"}),
        random_state=5,
    )
    assert isinstance(model, TorchCNNClassifier)
    assert (model.epochs, model.committee, model.random_state, model.device) == (
        3,
        "ensemble",
        5,
        "cpu",
    )
    for task in ("regression", "ner"):
        with pytest.raises(ValidationError, match="torch_cnn classifies images"):
            ModelSettings(kind="torch_cnn", task=task)
    with pytest.raises(ValueError, match="torch_cnn classifies images"):  # a resolved copy
        build_model(ModelSettings(kind="torch_cnn").model_copy(update={"task": "regression"}))
