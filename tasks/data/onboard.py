"""A project from the user's own data (``labelwise init``): read the file or folder, decide what
its items and labels are (stated, and overridable), write ``params.yaml``, ingest the items,
keep the labels it already has as seed labels, and split off (or read) a holdout.

Detection: an image column or a folder of images -> images (a folder's class subfolders are
labels); a column of token lists -> sentences to tag; a column of long free text -> texts;
otherwise table rows. Labels that are all numbers with many distinct values -> regression.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tasks.data import store
from tasks.data.profile import DEFAULT_METRIC, DataProfile, looks_numeric, write_profile
from tasks.features.space import as_tokens

#: share of the labeled items kept as the holdout when no holdout file is given
HOLDOUT_SHARE = 0.2
#: labeled items needed before a holdout is split off (fewer: all of them are seed labels)
MIN_FOR_HOLDOUT = 10
LABEL_CONFIG = {
    "text": "text_classification",
    "image": "image_classification",
    "tabular": "tabular_classification",
    "tokens": "ner",
}


class OnboardError(ValueError):
    """The data cannot become a project as given; the message says what to pass."""


@dataclass
class Plan:
    """What ``labelwise init`` found and will set up."""

    source: Path
    kind: str
    task: str
    label_column: str
    text_column: str | None = None
    image_column: str | None = None
    classes: list[str] = field(default_factory=list)
    n_items: int = 0
    n_labeled: int = 0
    holdout: str = ""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = {"tabular": "table rows", "text": "texts", "image": "images", "tokens": "sentences"}
        column = self.text_column or self.image_column
        lines = [
            f"data: {self.n_items} {what[self.kind]}" + (f" (column {column!r})" if column else "")
        ]
        labels = f"labels: {self.n_labeled} of them (column {self.label_column!r})"
        if self.task == "classification" and self.classes:
            shown = ", ".join(self.classes[:8]) + (", ..." if len(self.classes) > 8 else "")
            labels += f", {len(self.classes)} classes: {shown}"
        lines += [labels, f"task: {self.task}", f"holdout: {self.holdout}", *self.notes]
        return "\n".join(lines)


def read_items(path: Path, settings: Any) -> pd.DataFrame:
    """The file's rows, or a folder's files (a class subfolder, if any, as ``label``)."""
    from tasks.data.readers import read_folder, read_table

    if not path.exists():
        raise OnboardError(f"{path}: no such file or folder")
    if path.is_dir():
        frame, _ = read_folder(path, settings.data, "init", settings)
        parts = frame["source_path"].map(lambda p: Path(p).parts)
        if (parts.map(len) > 1).all() and parts.map(lambda p: p[0]).nunique() > 1:
            frame[settings.data.label_column] = parts.map(lambda p: p[0])
        return frame.reset_index(drop=True)
    return read_table(path, "init", settings).reset_index(drop=True)


def _long_text(column: pd.Series) -> bool:
    values = column.dropna().astype(str)
    return (
        len(values) > 0 and values.str.len().mean() >= 20 and values.nunique() > 0.5 * len(values)
    )


def _token_lists(column: pd.Series) -> bool:
    values = column.dropna()
    if values.empty:
        return False
    first = values.iloc[0]
    if isinstance(first, list | tuple | np.ndarray):
        return True
    return isinstance(first, str) and first.lstrip().startswith("[")


def plan_project(
    frame: pd.DataFrame,
    source: Path,
    settings: Any,
    *,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    task: str | None = None,
    classes: list[str] | None = None,
) -> Plan:
    """Decide the data kind, the label column and the task (each given value wins)."""
    label = label_column or settings.data.label_column
    if label_column and label not in frame.columns:
        raise OnboardError(
            f"{source}: no label column {label!r}; columns: {', '.join(frame.columns)}"
        )
    candidates = [c for c in frame.columns if c not in (label, "source_path", "__row_hash")]
    for given in (text_column, image_column):
        if given and given not in frame.columns:
            raise OnboardError(
                f"{source}: no column {given!r}; columns: {', '.join(frame.columns)}"
            )
    image = image_column or (
        settings.data.image_column if settings.data.image_column in frame else None
    )
    text = text_column
    kind = "image" if image else "tabular"
    if not image:
        if text is None:
            text = next((c for c in candidates if _token_lists(frame[c])), None)
            text = text or next(
                (c for c in candidates if frame[c].dtype == object and _long_text(frame[c])), None
            )
        if text is not None:
            kind = "tokens" if _token_lists(frame[text]) else "text"
            if kind == "text" and pd.api.types.is_numeric_dtype(frame[text]):
                raise OnboardError(f"{source}: column {text!r} holds numbers, not text")
    labels = frame[label] if label in frame.columns else pd.Series(dtype=object)
    labeled = labels.notna() & (labels.astype(str).str.strip() != "")
    if task is None:
        task = (
            "ner"
            if kind == "tokens"
            else (
                "regression" if not classes and looks_numeric(labels[labeled]) else "classification"
            )
        )
    found = sorted(map(str, labels[labeled].unique())) if task == "classification" else []
    plan = Plan(
        source=source,
        kind=kind,
        task=task,
        label_column=label,
        text_column=text if kind in ("text", "tokens") else None,
        image_column=image,
        classes=list(classes) if classes else found,
        n_items=len(frame),
        n_labeled=int(labeled.sum()),
    )
    if classes and found:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise OnboardError(
                f"{source}: labels {unknown[:5]} are not among --classes {', '.join(classes)}"
            )
    return plan


def split_holdout(
    frame: pd.DataFrame, plan: Plan, seed: int, holdout_file: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, holdout): the given holdout file, or a share of the labeled items split off.
    Identical items share a content id: one is kept first, so none is both pool and holdout."""
    label = plan.label_column
    columns = [c for c in frame.columns if c not in (label, "source_path", "__row_hash")]
    frame = frame.drop_duplicates(subset=columns)
    if holdout_file is not None:
        if label not in holdout_file.columns:
            raise OnboardError(f"the holdout file has no label column {label!r}")
        plan.holdout = f"{len(holdout_file)} labeled items from the holdout file"
        return frame, holdout_file
    if label not in frame.columns:
        plan.holdout = "none yet: add one with `labelwise ingest FILE --holdout` before training"
        return frame, frame.iloc[:0]
    labeled = frame[frame[label].notna() & (frame[label].astype(str).str.strip() != "")]
    if len(labeled) < MIN_FOR_HOLDOUT:
        plan.holdout = (
            f"none yet ({len(labeled)} labeled items): add one with "
            "`labelwise ingest FILE --holdout` before training"
        )
        return frame, frame.iloc[:0]
    rng = np.random.default_rng(seed)
    n = max(1, round(HOLDOUT_SHARE * len(labeled)))
    picked = labeled.index[rng.choice(len(labeled), size=n, replace=False)]
    plan.holdout = f"{n} of the labeled items split off ({HOLDOUT_SHARE:.0%}), never queried"
    return frame.drop(index=picked), frame.loc[picked]


def project_params(plan: Plan, name: str) -> dict[str, Any]:
    """The ``params.yaml`` a plan writes: what was detected, stated (every other key default)."""
    data: dict[str, Any] = {"kind": plan.kind, "label_column": plan.label_column}
    if plan.text_column:
        data["text_column"] = plan.text_column
    if plan.image_column:
        data["image_column"] = plan.image_column
    if plan.classes:
        data["classes"] = plan.classes
    annotation: dict[str, Any] = {"backend": "files", "label_config": LABEL_CONFIG[plan.kind]}
    if plan.text_column:
        annotation["text_field"] = plan.text_column  # what annotators read
    if plan.image_column:
        annotation["image_field"] = plan.image_column
    if plan.task == "regression":
        annotation["label_config"] = "number"
    return {
        "project": {"name": name},
        "data": data,
        "model": {"task": plan.task},
        "evaluate": {"metric": DEFAULT_METRIC[plan.task]},
        "annotation": annotation,
    }


def write_params(path: Path, params: dict[str, Any], plan: Plan) -> None:
    header = (
        f"# labelwise settings for {plan.source} (written by `labelwise init`).\n"
        "# Detected, and yours to change: data.kind, data.*_column, model.task, data.classes.\n"
        "# Every other setting has its default (see docs/ or tasks/settings/).\n"
    )
    path.write_text(header + yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def as_items(frame: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The frame as the pool stores items: token lists as JSON text, no bookkeeping columns of
    the folder reader."""
    items = frame.drop(columns=[c for c in ("source_path", "__row_hash") if c in frame.columns])
    if plan.kind == "tokens":
        items = items.assign(
            **{plan.text_column: items[plan.text_column].map(lambda v: json.dumps(as_tokens(v)))}
        )
        if plan.label_column in items.columns:
            tags = items[plan.label_column]
            items[plan.label_column] = tags.where(tags.isna(), tags.map(_tag_text))
    return items


def _tag_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps([str(t) for t in value])


def create_project(
    settings: Any, frame: pd.DataFrame, holdout: pd.DataFrame, plan: Plan
) -> dict[str, int]:
    """Ingest the items and the holdout, keep the labels the items carry as seed labels (round
    0, annotator ``imported``) and record the profile. Returns the counts."""
    from tasks.data.ingest import ingest
    from tasks.data.labels import collect_labels

    label = plan.label_column
    work = Path(settings.project.work_dir) / "init"
    work.mkdir(parents=True, exist_ok=True)
    items = as_items(frame, plan)
    columns = [c for c in items.columns if c != label]
    # identical items would share a content id: one is kept (with its label, if any)
    items = items.drop_duplicates(subset=columns).reset_index(drop=True)
    items[columns].to_parquet(work / "pool.parquet", index=False)
    profile = DataProfile(kind=plan.kind, task=plan.task, source=f"labelwise init {plan.source}")
    write_profile(settings, profile)
    ingest(work / "pool.parquet", settings, round_=0)
    if len(holdout):
        as_items(holdout, plan).to_parquet(work / "holdout.parquet", index=False)
        ingest(work / "holdout.parquet", settings, holdout=True, round_=0)
    ids = store.read_pool(settings)["id"].astype(str).to_numpy()
    if len(ids) != len(items):
        raise OnboardError(f"ingest kept {len(ids)} of {len(items)} items (see the quarantine)")
    seeds = 0
    if label in items.columns:
        known = items[label].notna() & (items[label].astype(str).str.strip() != "")
        positions = np.flatnonzero(known.to_numpy())
        if len(positions):
            seed = pd.DataFrame(
                {
                    "id": ids[positions],
                    "label": items[label].to_numpy()[positions].astype(str),
                    "annotator": "imported",
                    "source": "human",
                }
            )
            collect_labels(seed, settings, round_=0, file=str(plan.source))
            seeds = len(seed)
    return {"items": len(ids), "seed_labels": seeds, "holdout": len(holdout)}
