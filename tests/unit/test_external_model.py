"""``model.kind: external`` without Prefect: loading the user's function, checking what it
returns (each bad answer names the function, the call, the row and the column), ranking a pool
chunk by chunk exactly as in one piece, and the settings that refuse a half-configured model."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from tasks.external.model import (
    ExternalModelError,
    PredictFailed,
    call_predict,
    class_probabilities,
    load_predict,
    rank_pool,
    shape_strategy,
)
from tasks.external.predictions import Shape
from tasks.settings import Settings

pytestmark = pytest.mark.unit

SPEC = "fake_user_model:predict"


def _install(monkeypatch, predict, **attrs) -> None:
    module = types.ModuleType("fake_user_model")
    module.predict = predict
    for name, value in attrs.items():
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, "fake_user_model", module)


def _items(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"i{k:03d}" for k in range(n)], "x": np.arange(n, dtype=float)})


def _probas_of(items: pd.DataFrame) -> pd.DataFrame:
    """A fixed 'model': P(b) rises with x, so margin is smallest where x is near 50."""
    p = 1 / (1 + np.exp(-(items["x"].to_numpy() - 50) / 7))
    return pd.DataFrame({"id": items["id"].to_numpy(), "p_a": 1 - p, "p_b": p})


def _settings(**strategy):
    return Settings.model_validate(
        {
            "model": {"kind": "external", "predict": SPEC, "predict_chunk_rows": 7},
            "strategy": {"name": "margin", "batch_size": 5, **strategy},
        }
    )


def test_load_predict_names_what_is_wrong(monkeypatch):
    _install(monkeypatch, _probas_of)
    assert load_predict(SPEC) is _probas_of
    with pytest.raises(ExternalModelError, match=r"write it as 'package.module:function'"):
        load_predict("fake_user_model.predict")
    with pytest.raises(ExternalModelError, match="cannot import 'no_such_module_x'"):
        load_predict("no_such_module_x:predict")
    with pytest.raises(ExternalModelError, match="fake_user_model has no function 'other'"):
        load_predict("fake_user_model:other")


def test_each_bad_answer_names_the_call_row_and_column():
    items = _items(4)

    def returns(value):
        return lambda frame: value

    with pytest.raises(ExternalModelError, match=r"call 3, 4 items\) returned list"):
        call_predict(returns([1, 2]), SPEC, items, 3)
    with pytest.raises(ExternalModelError, match="row 1, column 'id': no id column"):
        call_predict(returns(pd.DataFrame({"p_a": [1.0]})), SPEC, items, 1)
    stranger = pd.DataFrame({"id": ["i000", "zzz"], "p_a": [1.0, 1.0]})
    with pytest.raises(ExternalModelError, match="row 2, column 'id': id 'zzz' is not one of"):
        call_predict(returns(stranger), SPEC, items, 1)
    partial = _probas_of(items).iloc[:3]
    with pytest.raises(ExternalModelError, match=r"no predictions for 1 of the items .*'i003'"):
        call_predict(returns(partial), SPEC, items, 1)

    def raises(frame):
        raise ConnectionError("server restarting")

    with pytest.raises(PredictFailed, match="raised ConnectionError: server restarting"):
        call_predict(raises, SPEC, items, 2)


def test_an_image_without_boxes_is_allowed_and_rows_come_back_grouped():
    items = _items(3)
    boxes = pd.DataFrame(
        {
            "id": ["i002", "i000", "i002"],
            "box_id": [0, 0, 1],
            "p_a": [0.5, 0.9, 0.2],
            "p_b": [0.5, 0.1, 0.8],
        }
    )
    out = call_predict(lambda frame: boxes, SPEC, items, 1)
    assert list(out["id"]) == ["i000", "i002", "i002"]
    assert list(out["box_id"]) == [0, 0, 1]  # stable within an image


def test_ranking_in_chunks_equals_ranking_in_one_piece(monkeypatch):
    _install(monkeypatch, _probas_of, MODEL_VERSION="2024-05")
    items = _items(100)
    chunked = rank_pool(_settings(), items, 5, seed=0)
    whole = rank_pool(
        _settings().model_copy(
            update={"model": _settings().model.model_copy(update={"predict_chunk_rows": 1000})}
        ),
        items,
        5,
        seed=0,
    )
    assert chunked.ids == whole.ids
    assert chunked.ids[0] == "i050" and set(chunked.ids) == {"i048", "i049", "i050", "i051", "i052"}
    assert chunked.version == "2024-05" and chunked.strategy == "margin"
    predicted = chunked.predicted.set_index("id")
    assert predicted.loc["i049", "prediction"] == "a"
    assert predicted.loc["i051", "prediction"] == "b"
    assert predicted.loc["i050", "prediction_score"] == pytest.approx(0.5)


def test_columns_that_change_between_calls_are_refused(monkeypatch):
    def drifting(frame):
        out = _probas_of(frame)
        return out if frame["x"].iloc[0] == 0 else out.rename(columns={"p_b": "p_c"})

    _install(monkeypatch, drifting)
    with pytest.raises(ExternalModelError, match=r"call 2\).*differ from the first call's"):
        rank_pool(_settings(), _items(20), 5, seed=0)


def test_probabilities_outside_the_simplex_name_the_call_and_row(monkeypatch):
    def bad(frame):
        out = _probas_of(frame)
        out.loc[2, "p_a"] = np.nan
        return out

    _install(monkeypatch, bad)
    with pytest.raises(ExternalModelError, match=r"\(call 1\), row 3, column 'p_a': NaN"):
        rank_pool(_settings(), _items(20), 5, seed=0)


def test_committee_members_are_averaged_for_the_holdout(monkeypatch):
    def members(frame):
        ids = np.repeat(frame["id"].to_numpy(), 2)
        return pd.DataFrame(
            {"id": ids, "member": [0, 1] * len(frame), "p_a": [0.2, 0.6] * len(frame)}
        ).assign(p_b=lambda d: 1 - d["p_a"])

    _install(monkeypatch, members)
    ids, probas, classes = class_probabilities(_settings(), _items(9))
    assert list(ids) == list(_items(9)["id"]) and classes == ["a", "b"]
    np.testing.assert_allclose(probas, [[0.4, 0.6]] * 9)


@pytest.mark.parametrize(
    ("kind", "embeddings", "expected"),
    [("member", (), "bald"), ("item", ("emb_0",), "cluster_margin"), ("box", (), "margin")],
)
def test_auto_follows_the_shape_of_the_predictions(kind, embeddings, expected):
    shape = Shape(kind, ("p_a", "p_b"), embeddings, ())
    assert shape_strategy("auto", shape) == expected
    assert shape_strategy("entropy", shape) == "entropy"


def test_settings_refuse_a_half_configured_external_model():
    with pytest.raises(ValueError, match=r"model.kind external needs model.predict"):
        Settings.model_validate({"model": {"kind": "external"}})
    with pytest.raises(ValueError, match=r"model.predict is called only with model.kind external"):
        Settings.model_validate({"model": {"kind": "logreg", "predict": SPEC}})
    with pytest.raises(ValueError, match="task regression is not supported"):
        Settings.model_validate(
            {"model": {"kind": "external", "predict": SPEC, "task": "regression"}}
        )
    with pytest.raises(ValueError, match="strategy qbc_kl needs labelwise's own model"):
        Settings.model_validate(
            {"model": {"kind": "external", "predict": SPEC}, "strategy": {"name": "qbc_kl"}}
        )
    ok = Settings.model_validate({"model": {"kind": "external", "predict": SPEC}})
    assert ok.strategy.name in ("auto", "hybrid")
