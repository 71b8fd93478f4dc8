"""Settings of the data: the project, its data and gates, features, data versions."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from tasks.settings.base import Section


class ProjectSettings(Section):
    name: str = Field(
        "labelwise-demo", description="MLflow experiment and Prefect deployment prefix"
    )
    work_dir: Path = Field(Path(".labelwise"), description="Prefect home, MLflow store, DVC remote")
    data_dir: Path = Field(
        Path("data"), description="pool, labels, holdout and manifests (Parquet)"
    )
    seed: int = Field(0, description="seed for every random choice in a run")

    def rng(self, stream: str, *keys: int) -> np.random.Generator:
        """The random generator of one named purpose (``"strategy"``, ``"annotators"``,
        ``"gold"``, ``"stop_set"``, ...) and ``keys`` (e.g. the round): streams never share
        draws, so changing how one of them draws leaves the others as they were."""
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode()), *keys])

    def stream_seed(self, stream: str) -> int:
        """An integer seed of the named stream (for components that take a seed)."""
        return int(self.rng(stream).integers(2**31 - 1))


class DataSettings(Section):
    """Your data: which columns hold the id, label, text or image, the label set, and what the
    data gates accept."""

    kind: Literal["auto", "tabular", "text", "image", "tokens"] = Field(
        "auto",
        description="what an item is: a table row, a text, an image file, or a sentence of "
        "tokens to tag (auto: from the pool's columns, or the dataset of labelwise run)",
    )
    id_column: str | None = Field(
        None, description="input column holding a stable item id; null: sha256 of the row's content"
    )
    label_column: str = Field("label", description="input column holding the label (holdout files)")
    text_column: str = Field(
        "text", description="column of the raw text (or, for tokens, of each sentence's tokens)"
    )
    image_column: str = Field("image_path", description="column for image paths (image folders)")
    feature_columns: list[str] = Field(
        default_factory=list,
        description="table columns the model reads, which every ingested file must have "
        "(empty: every numeric and categorical column)",
    )
    nullable_columns: list[str] = Field(
        default_factory=list, description="input columns allowed to hold nulls (all others: none)"
    )
    value_ranges: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict, description="column -> [min, max] (inclusive; null: unbounded)"
    )
    classes: list[str] = Field(
        default_factory=list, description="the label set; empty: any non-empty label is accepted"
    )
    min_per_class: int = Field(1, ge=0, description="labels per class required before training")

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, value: Any) -> Any:
        """Labels are text: ``[0, 1]`` in YAML means the classes "0" and "1"."""
        if isinstance(value, list):
            return [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value


class FeatureSettings(Section):
    """How items become features: tabular columns, text (TF-IDF or sentence embeddings), images."""

    categorical_encoding: Literal["onehot", "ordinal"] = Field(
        "onehot", description="table columns with categories: one-hot, or one integer code each"
    )
    text_featurizer: Literal["tfidf", "embeddings"] = Field(
        "tfidf", description="text features: TF-IDF or all-MiniLM-L6-v2 sentence embeddings"
    )
    tfidf_max_features: int | None = Field(
        20_000, gt=0, description="vocabulary size cap (null: no cap)"
    )
    tfidf_min_df: int = Field(2, ge=1, description="drop terms in fewer documents than this")
    tfidf_max_df: float = Field(
        0.95, gt=0.0, le=1.0, description="drop terms in a larger share of documents"
    )
    tfidf_ngram_max: int = Field(2, ge=1, le=3, description="longest word n-gram")
    tfidf_sublinear_tf: bool = Field(True, description="use 1 + log(tf) instead of raw counts")
    embeddings_cache_dir: Path | None = Field(
        None,
        description="embedding cache keyed by text sha256 (null: <project.work_dir>/embeddings)",
    )
    embeddings_batch_size: int = Field(32, gt=0, description="texts per forward pass")
    embeddings_max_length: int = Field(
        256, ge=8, le=512, description="tokens kept per text (256 as sentence-transformers)"
    )
    embeddings_blas_threads: int | None = Field(
        1, ge=1, description="BLAS threads while embedding (null: the process default)"
    )
    image_size: tuple[int, int] = Field(
        (28, 28), description="images are resized to (height, width)"
    )
    image_max_value: float | None = Field(
        None, gt=0, description="white level of array images (null: 255 for ints, 1 for floats)"
    )

    def build_text(self, work_dir: Path = Path(".labelwise")) -> Any:
        """The configured text featurizer (a scikit-learn transformer)."""
        from tasks.features.text import make_text_featurizer

        if self.text_featurizer == "embeddings":
            cache = self.embeddings_cache_dir or Path(work_dir) / "embeddings"
            return make_text_featurizer(
                "embeddings",
                cache_dir=str(cache),
                batch_size=self.embeddings_batch_size,
                max_seq_length=self.embeddings_max_length,
                blas_threads=self.embeddings_blas_threads,
            )
        return make_text_featurizer(
            "tfidf",
            max_features=self.tfidf_max_features,
            min_df=self.tfidf_min_df,
            max_df=self.tfidf_max_df,
            ngram_range=(1, self.tfidf_ngram_max),
            sublinear_tf=self.tfidf_sublinear_tf,
        )


class VersioningSettings(Section):
    """Data versions: each round's pool, labels and holdout committed and tagged, and pushed to a
    DVC remote."""

    enabled: bool = Field(True, description="commit, tag and push the data after each round")
    remote_url: str | None = Field(
        None, description="DVC remote (s3://..., /path, ...); null: <project.work_dir>/dvc-remote"
    )
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint of an s3:// remote, e.g. MinIO's http://minio:9000 "
        "(null: AWS, or AWS_ENDPOINT_URL_S3); keys come from the environment or Prefect Secret "
        "blocks, never from this file",
    )
    remote_name: str = Field("storage", description="name of the DVC remote in the data repo")
    push: bool = Field(True, description="push each committed round to the remote")
    tag_prefix: str = Field("round-", description="git tag of round N in the data repo: <prefix>N")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_needs_s3(cls, value: str | None, info: Any) -> str | None:
        remote = info.data.get("remote_url") or ""
        if value is not None and not remote.startswith("s3://"):
            raise ValueError("an endpoint needs an s3:// remote_url (e.g. s3://dvc/labelwise-demo)")
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, e.g. http://127.0.0.1:9000, not {value!r}")
        return value
