"""Simulated annotators: answers from known labels, for benchmarks and ``make run``.

Each annotator answers through a confusion matrix (row = true class, column = answer): built from
``accuracy`` (errors spread uniformly), given explicitly, or adversarial (always the next class:
a systematic liar). Answers become visible only ``latency`` seconds after dispatch on an
injectable clock, so waiting for a quorum can be tested without sleeping. State (what was
dispatched and answered) lives in a Parquet file so a restarted run sees the same annotations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.annotation.base import (
    ANNOTATION_COLUMNS,
    Progress,
    check_batch,
)


def utc_now() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(UTC))


@dataclass(frozen=True)
class SimulatedAnnotator:
    """One simulated person: ``accuracy`` (chance of the true label), an explicit ``confusion``
    matrix (K x K, rows sum to 1, in the backend's class order), or ``adversarial``; answers
    appear ``latency`` seconds (times a U(0.5, 1.5) jitter) after dispatch."""

    name: str
    accuracy: float = 1.0
    adversarial: bool = False
    confusion: tuple[tuple[float, ...], ...] | None = None
    latency: float = 0.0

    def matrix(self, n_classes: int) -> np.ndarray:
        """The annotator's confusion matrix, shape (n_classes, n_classes)."""
        if self.confusion is not None:
            m = np.asarray(self.confusion, dtype=float)
            if m.shape != (n_classes, n_classes) or not np.allclose(m.sum(axis=1), 1.0):
                raise ValueError(
                    f"annotator {self.name!r}: confusion must be {n_classes}x{n_classes} "
                    "with rows summing to 1"
                )
            return m
        if n_classes == 1:
            return np.ones((1, 1))
        if self.adversarial:
            return np.roll(np.eye(n_classes), 1, axis=1)
        off = (1.0 - self.accuracy) / (n_classes - 1)
        return np.full((n_classes, n_classes), off) + np.eye(n_classes) * (self.accuracy - off)

    def answer(self, truth: str, classes: Sequence[str], rng: np.random.Generator) -> str:
        classes = list(classes)
        if self.confusion is None and not self.adversarial:
            # same draws as the original implementation, so seeded runs keep their answers
            wrong = [c for c in classes if c != truth]
            if rng.random() < self.accuracy or not wrong:
                return truth
            return wrong[int(rng.integers(len(wrong)))]
        row = self.matrix(len(classes))[classes.index(truth)]
        return classes[int(rng.choice(len(classes), p=row))]


@dataclass
class SimulatedBackend:
    """Answers dispatched items from ``truth`` (id -> label). A share ``overlap_share`` of items
    (default: all) goes to ``annotators_per_item`` distinct annotators, the rest to one."""

    truth: dict[str, str]
    classes: list[str]
    state_file: Path
    annotators: list[SimulatedAnnotator] = field(
        default_factory=lambda: [SimulatedAnnotator("oracle")]
    )
    annotators_per_item: int = 1
    seed: int = 0
    name: str = "simulated"
    overlap_share: float = 1.0
    clock: Callable[[], pd.Timestamp] = field(default=utc_now, repr=False)

    def _state(self) -> pd.DataFrame:
        if self.state_file.exists():
            return pd.read_parquet(self.state_file)
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ANNOTATION_COLUMNS})

    def _write(self, state: pd.DataFrame, rows: list[tuple]) -> None:
        new = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))
        combined = pd.concat([state, new], ignore_index=True) if len(state) else new
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        combined.to_parquet(tmp, index=False)
        tmp.replace(self.state_file)

    def _answers(
        self, item: str, chosen: Sequence[int], round_: int, rng: np.random.Generator
    ) -> list[tuple]:
        now = self.clock()
        rows = []
        for a in chosen:
            annotator = self.annotators[int(a)]
            label = annotator.answer(self.truth[item], self.classes, rng)
            delay = annotator.latency * rng.uniform(0.5, 1.5) if annotator.latency else 0.0
            visible = now + pd.Timedelta(seconds=float(delay))
            rows.append((item, label, annotator.name, round_, visible, "simulated"))
        return rows

    def dispatch(self, batch: pd.DataFrame, round_: int) -> list[str]:
        check_batch(batch)
        state = self._state()
        done = set(state["id"].astype(str))
        new_ids = [str(i) for i in batch["id"] if str(i) not in done]
        unknown = [i for i in new_ids if i not in self.truth]
        if unknown:
            raise KeyError(f"simulated annotators have no known label for id {unknown[0]!r}")
        rng = np.random.default_rng([self.seed, round_])
        k = min(self.annotators_per_item, len(self.annotators))
        overlapping = (
            rng.random(len(new_ids)) < self.overlap_share
            if self.overlap_share < 1.0
            else np.ones(len(new_ids), dtype=bool)
        )
        routed = self._routes(batch)
        rows = []
        for item, overlap in zip(new_ids, overlapping, strict=True):
            size = k if overlap else 1
            allowed = routed.get(item)
            if allowed is None:
                chosen = rng.choice(len(self.annotators), size=size, replace=False)
            else:  # annotation.routing: only these annotators may answer the item
                chosen = rng.choice(allowed, size=min(size, len(allowed)), replace=False)
            rows.extend(self._answers(item, chosen, round_, rng))
        if rows:
            self._write(state, rows)
        return new_ids

    def _routes(self, batch: pd.DataFrame) -> dict[str, list[int]]:
        """id -> indices of the annotators a ``route`` column allows (no column: none)."""
        if "route" not in batch.columns:
            return {}
        index = {a.name: i for i, a in enumerate(self.annotators)}
        out = {}
        for item, route in zip(batch["id"].astype(str), batch["route"], strict=True):
            allowed = [index[n] for n in str(route).split("|") if n in index]
            if allowed:
                out[item] = allowed
        return out

    def request_more(self, ids: Sequence[str]) -> list[str]:
        """One more annotation for each of ``ids`` from an annotator who has not seen it yet
        (low agreement); returns the ids that got one (all annotators used: skipped)."""
        state = self._state()
        rng = np.random.default_rng([self.seed, len(state)])
        rows, sent = [], []
        for item in map(str, ids):
            seen = state[state["id"].astype(str) == item]
            if seen.empty:
                continue
            used = set(seen["annotator"])
            free = [i for i, a in enumerate(self.annotators) if a.name not in used]
            if free:
                chosen = [free[int(rng.integers(len(free)))]]
                rows.extend(self._answers(item, chosen, int(seen["round"].iloc[0]), rng))
                sent.append(item)
        if rows:
            self._write(state, rows)
        return sent

    def collect(self, round_: int | None = None) -> pd.DataFrame:
        """Annotations visible by now (``time`` <= clock), of ``round_`` or all."""
        state = self._state()
        if round_ is not None:
            state = state[state["round"] == round_]
        if len(state):
            state = state[pd.to_datetime(state["time"], utc=True) <= self.clock()]
        return state.reset_index(drop=True)

    def progress(self, round_: int) -> Progress:
        state = self._state()
        dispatched = state[state["round"] == round_]["id"].nunique() if len(state) else 0
        visible = self.collect(round_)
        return Progress(
            dispatched=dispatched, annotated=visible["id"].nunique(), annotations=len(visible)
        )
