"""``auto``: a bandit picks, each round, which strategy fills the batch, random among them, so a
project where uncertainty does not pay drifts toward random and one where it pays exploits it.

The reward of an arm is measured, not assumed. Each query reserves a few uniformly drawn pool
rows (the *probe*) and records the current model's predictions on them; the next query records
the next model's predictions on the same rows (still unlabeled: neither model trained on them)
and puts them in its batch; once their labels are observed, the arm that chose the batch between
the two models is rewarded by the relative drop of the error (Brier score for classes, squared
error for numbers) on the probe: a paired, unbiased estimate of what its batch bought. Arms are
weighted as in EXP3 (importance-weighted, discounted rewards, uniform exploration floor).

The state (``state``) is plain JSON with pool rows as indices, so a caller that rebuilds the
strategy each round (the loop) saves and restores it; labels reach it through :meth:`observe`.

References
----------
Hsu, W.-N. & Lin, H.-T. (2015). Active learning by learning. AAAI (a bandit over strategies,
importance-weighted reward).
Auer, P., Cesa-Bianchi, N., Freund, Y. & Schapire, R. E. (2002). The nonstochastic multiarmed
bandit problem. SIAM J. Comput. (EXP3).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from strategies._pool import take_rows
from strategies.base import QueryContext, QueryStrategy, Selection
from strategies.random import RandomSampling
from strategies.selection import _stack_rows

#: the arms per kind of model when ``arms`` is not given
DEFAULT_ARMS = {
    "classification": ("random", "margin", "cluster_margin"),
    "regression": ("random", "igs", "variance"),
}


def probe_error(prediction: dict[str, Any], labels: list[Any]) -> float:
    """Mean Brier score (classes: ``{"classes", "proba"}``) or squared error (numbers:
    ``{"values"}``) of a recorded prediction against the observed labels."""
    if "values" in prediction:
        values = np.asarray(prediction["values"], dtype=np.float64)
        return float(np.mean((values - np.asarray(labels, dtype=np.float64)) ** 2))
    classes = [str(c) for c in prediction["classes"]]
    proba = np.asarray(prediction["proba"], dtype=np.float64)
    errors = []
    for row, label in zip(proba, labels, strict=True):
        onehot = np.array([c == str(label) for c in classes], dtype=np.float64)
        # a label the model does not know: its whole probability mass counts as wrong, plus 1
        errors.append(float(((row - onehot) ** 2).sum()) + (0.0 if onehot.any() else 1.0))
    return float(np.mean(errors))


def relative_gain(before: float, after: float) -> float:
    """The error's relative drop from ``before`` to ``after``, clipped to [-1, 1]."""
    if before <= 1e-12:
        return 0.0 if after <= 1e-12 else -1.0
    return float(np.clip((before - after) / before, -1.0, 1.0))


class AutoStrategy(QueryStrategy):
    """A bandit over strategies (random among them) rewarded by the measured error drop on probe
    rows: each round one arm fills the batch; ``probe_share`` of it is the uniformly drawn probe
    that measures the last arm's gain. Never far from random where uncertainty does not pay.

    Cost: the chosen arm's query + two passes (probe draw, probe rows) + 2 predicts on the probe.

    Parameters
    ----------
    arms : tuple of str, optional
        Strategy names (default: random, margin, cluster_margin for a classifier; random, igs,
        variance for a regressor).
    probe_share : float, default=0.2
        Share of each batch reserved for the probe (at least one row).
    exploration : float, default=0.2
        Uniform share of the arm probabilities (EXP3's gamma).
    learning_rate : float, default=0.5
        How sharply normalised rewards separate the arms.
    discount : float, default=0.9
        Weight kept by older rewards each time a reward arrives (the gains shrink as labels grow).
    state : dict, optional
        A state saved from :attr:`state` (rounds, arm scores, pending probes, labels, history).
    arm_params : dict, optional
        Parameters of an arm's strategy by arm name, e.g. the labeling functions' votes of a
        ``weak_disagreement`` arm (:func:`strategies.weak.with_votes`).
    """

    name = "auto"
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    cost: ClassVar[str] = "the chosen arm's query + 2 passes + 2 predicts on the probe rows"

    def __init__(
        self,
        arms: tuple[str, ...] | None = None,
        probe_share: float = 0.2,
        exploration: float = 0.2,
        learning_rate: float = 0.5,
        discount: float = 0.9,
        state: dict[str, Any] | None = None,
        arm_params: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.arms = None if arms is None else tuple(arms)
        self.arm_params = arm_params
        self.probe_share = probe_share
        self.exploration = exploration
        self.learning_rate = learning_rate
        self.discount = discount
        self.state = state if state is not None else {}

    # -- state ---------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        s = self.state
        s.setdefault("round", 0)
        s.setdefault("scores", {})
        s.setdefault("pending", [])
        s.setdefault("labels", [])  # [row, label] pairs of probe rows
        s.setdefault("history", [])
        s.setdefault("scale", 0.0)
        s.setdefault("n_rewards", 0)
        return s

    def observe(self, indices: Any, labels: Any) -> None:
        """Labels of pool rows (by index) that arrived since the last query; only the probe
        rows' are kept."""
        s = self._state()
        wanted = {i for p in s["pending"] for i in p["probe"]}
        known = dict((row, label) for row, label in s["labels"])
        for index, label in zip(np.asarray(indices).tolist(), list(labels), strict=True):
            if index in wanted:
                known[index] = label.item() if hasattr(label, "item") else label
        s["labels"] = [[row, label] for row, label in known.items()]

    def probabilities(self, arms: tuple[str, ...]) -> np.ndarray:
        """EXP3's arm probabilities from the discounted, importance-weighted scores."""
        scores = np.array([self._state()["scores"].get(a, 0.0) for a in arms])
        weights = np.exp(self.learning_rate * (scores - scores.max()))
        return (1.0 - self.exploration) * weights / weights.sum() + self.exploration / len(arms)

    def _check(self) -> None:
        if not 0.0 < self.probe_share < 1.0:
            raise ValueError(f"auto: probe_share must be in (0, 1), got {self.probe_share}")
        if not 0.0 < self.exploration <= 1.0 or not 0.0 < self.discount <= 1.0:
            raise ValueError(
                f"auto: exploration and discount must be in (0, 1], got {self.exploration} "
                f"and {self.discount}"
            )

    # -- query ---------------------------------------------------------------------------------

    def _arms(self, ctx: QueryContext) -> tuple[str, ...]:
        if self.arms is not None:
            return self.arms
        regressor = ctx.model is not None and not hasattr(ctx.model, "predict_proba")
        return DEFAULT_ARMS["regression" if regressor else "classification"]

    def _reward(self, s: dict[str, Any]) -> list[dict[str, Any]]:
        """Rewards of every pending probe whose labels have all arrived (and whose second
        prediction exists); their arms' scores are updated, the probes dropped."""
        done, keep = [], []
        known = dict((row, label) for row, label in s["labels"])
        for probe in s["pending"]:
            labels = [known.get(i) for i in probe["probe"]]
            if probe.get("after") is None or any(label is None for label in labels):
                keep.append(probe)
                continue
            gain = relative_gain(
                probe_error(probe["before"], labels), probe_error(probe["after"], labels)
            )
            n = s["n_rewards"] = s["n_rewards"] + 1
            s["scale"] += (abs(gain) - s["scale"]) / n  # running mean |gain|: rewards stay O(1)
            normalised = gain / s["scale"] if s["scale"] > 0 else 0.0
            for arm in s["scores"]:
                s["scores"][arm] *= self.discount
            s["scores"][probe["arm"]] = s["scores"].get(probe["arm"], 0.0) + normalised / probe["p"]
            for i in probe["probe"]:
                known.pop(i, None)
            done.append({"arm": probe["arm"], "round": probe["round"], "gain": gain})
        s["pending"] = keep
        s["labels"] = [[row, label] for row, label in known.items()]
        return done

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        import strategies

        self._check()
        s = self._state()
        arms = self._arms(ctx)
        rewarded = self._reward(s)
        excluded_now = set(np.asarray(ctx.excluded).tolist())
        # last round's probe: predicted by this model (neither it nor the last one trained on
        # them), then labeled in this batch
        forced: list[int] = []
        for probe in s["pending"]:
            if probe.get("after") is None:
                rows = [i for i in probe["probe"] if i not in excluded_now]
                probe["probe"] = rows
                if rows:
                    probe["after"] = self._predict(ctx, rows)
                    forced.extend(rows)
        s["pending"] = [p for p in s["pending"] if p["probe"]]
        forced = forced[:batch_size]
        excluded = ctx.excluded
        ctx.excluded = np.union1d(excluded, np.asarray(forced, dtype=np.int64))
        p = self.probabilities(arms)
        arm = arms[int(ctx.rng.choice(len(arms), p=p))]
        room = batch_size - len(forced)
        n_probe = max(1, round(self.probe_share * batch_size)) if ctx.model is not None else 0
        probe_rows = np.empty(0, dtype=np.int64)
        if n_probe and room > 0:
            # a probe only from rows the batch does not need: a small pool is labeled whole
            drawn = RandomSampling().top_candidates(ctx, room + n_probe).indices
            probe_rows = drawn[: max(0, drawn.shape[0] - room)][:n_probe]
        if probe_rows.shape[0]:
            s["pending"].append(
                {
                    "round": s["round"],
                    "arm": arm,
                    "p": float(p[arms.index(arm)]),
                    "probe": probe_rows.tolist(),
                    "before": self._predict(ctx, probe_rows.tolist()),
                    "after": None,
                }
            )
        ctx.excluded = np.union1d(ctx.excluded, probe_rows)
        arm_strategy = strategies.get(arm, **(self.arm_params or {}).get(arm, {}))
        picked = arm_strategy._query(ctx, room) if room > 0 else None
        ctx.excluded = excluded
        s["history"].append(
            {
                "round": s["round"],
                "arm": arm,
                "probabilities": dict(zip(arms, (float(x) for x in p), strict=True)),
                "rewards": rewarded,
            }
        )
        s["round"] += 1
        selection = Selection.of(np.asarray(forced, dtype=np.int64), None, "random")
        if picked is not None:
            selection = selection.concat(
                Selection(
                    picked.indices,
                    picked.scores,
                    np.where(picked.sources == "random", "random", arm),
                )
            )
        return selection

    def _predict(self, ctx: QueryContext, rows: list[int]) -> dict[str, Any]:
        """The model's predictions on pool ``rows``, as JSON: class probabilities, or numbers."""
        X = _pool_rows(ctx, rows)
        if hasattr(ctx.model, "predict_proba"):
            proba = np.asarray(ctx.model.predict_proba(X), dtype=np.float64)
            classes = [c.item() if hasattr(c, "item") else c for c in ctx.model.classes_]
            return {"classes": [str(c) for c in classes], "proba": proba.round(6).tolist()}
        return {"values": np.asarray(ctx.model.predict(X), dtype=np.float64).tolist()}

    def get_state(self) -> dict[str, Any]:
        return self.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.state = state

    def __repr__(self) -> str:  # the state is data, not a parameter worth printing
        params = {k: v for k, v in self.get_params().items() if k != "state"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def remap_rows(state: dict[str, Any], row: Any) -> dict[str, Any]:
    """``state`` with every pool row reference passed through ``row`` (e.g. index -> item id
    and back, for a caller whose pool grows between rounds); a reference that ``row`` maps to
    None is dropped."""
    out = json.loads(json.dumps(state))
    for probe in out.get("pending", []):
        probe_rows = [(row(i), k) for k, i in enumerate(probe["probe"])]
        kept = [k for r, k in probe_rows if r is not None]
        probe["probe"] = [r for r, _ in probe_rows if r is not None]
        for key in ("before", "after"):
            prediction = probe.get(key)
            if prediction is None:
                continue
            for field in ("proba", "values"):
                if field in prediction:
                    prediction[field] = [prediction[field][k] for k in kept]
    out["labels"] = [[row(r), label] for r, label in out.get("labels", []) if row(r) is not None]
    return out


def _pool_rows(ctx: QueryContext, rows: list[int]) -> Any:
    """Pool rows by global index, in the order given (one pass for a chunked pool)."""
    wanted = np.asarray(rows, dtype=np.int64)
    if ctx.pool.in_memory:
        return take_rows(ctx.pool.source, wanted)
    ordered = np.sort(wanted)
    parts = []
    for offset, chunk in ctx.pool.chunks():
        local = ordered[(ordered >= offset) & (ordered < offset + chunk.shape[0])] - offset
        if local.shape[0]:
            parts.append(take_rows(chunk, local))
    stacked = parts[0]
    for part in parts[1:]:
        stacked = _stack_rows(stacked, part)
    return take_rows(stacked, np.searchsorted(ordered, wanted))
