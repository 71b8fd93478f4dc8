"""Settings of running the loop: stopping and waiting, annotation, scale-out, serving."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tasks.settings.base import Section


class LoopSettings(Section):
    """The loop: when it stops, how long it waits for labels, and the demo project of
    ``labelwise run``."""

    max_rounds: int = Field(5, ge=1, description="stop after this many rounds in total")
    label_budget: int | None = Field(
        None, gt=0, description="stop once this many annotations are spent (null: no budget)"
    )
    target_metric: str | None = Field(
        None, description="holdout metric of the target rule (null: evaluate.metric)"
    )
    target_value: float | None = Field(
        None, description="stop once the holdout metric reaches this value (null: off)"
    )
    plateau_rounds: int | None = Field(
        None, ge=1, description="stop after this many rounds improving less than plateau_delta"
    )
    plateau_delta: float = Field(0.005, ge=0.0, description="smallest improvement that counts")
    stop_set_size: int = Field(
        200, ge=0, description="unlabeled pool rows whose predictions are compared across rounds"
    )
    kappa: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="stop when successive models agree on the stop set with Cohen's kappa >= this",
    )
    stable_rounds: int = Field(
        1, ge=1, description="successive-model agreements above kappa needed to stop"
    )
    quorum: float = Field(
        1.0, gt=0.0, le=1.0, description="share of a batch that must be labeled to train"
    )
    wait_seconds: float = Field(
        0.0, ge=0.0, description="how long collect polls for the quorum before the run waits"
    )
    poll_seconds: float = Field(5.0, gt=0.0, description="seconds between polls for labels")
    initial_labels: int = Field(
        20,
        ge=0,
        description="labels the simulated oracle gives before round 1 (demo project; 0: start "
        "cold, round 1 picks typical rows without a model)",
    )
    dataset: str = Field("digits", description="bundled dataset of the demo project")
    demo_rows: int | None = Field(
        None, gt=0, description="use a random subset of this many dataset rows (null: all)"
    )
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share of the demo dataset kept as the holdout"
    )
    inbox: Path | None = Field(
        None, description="folder whose new files are ingested at the start of each round"
    )


class AnnotationSettings(Section):
    """Where selected items are labeled and how several annotators' answers are combined.

    Label Studio's URL and token come from ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``, never
    from this file.
    """

    backend: Literal["simulated", "label_studio", "files"] = Field(
        "simulated", description="simulated annotators, a Label Studio server, or CSV/JSONL files"
    )
    label_config: Literal[
        "text_classification",
        "image_classification",
        "tabular_classification",
        "ner",
        "number",
        "object_detection",
        "polygon_segmentation",
    ] = Field(
        "text_classification",
        description="what annotators see and answer (number: a number for each item, regression; "
        "object_detection / polygon_segmentation: boxes / polygons on an image, detection)",
    )
    overlap_share: float = Field(
        0.0, ge=0.0, le=1.0, description="share of items sent to annotators_per_item annotators"
    )
    annotators_per_item: int = Field(
        1, ge=1, le=20, description="annotators for the overlapping share of items (k)"
    )
    gold_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of each batch made of gold items (known answers)"
    )
    agreement_threshold: float = Field(
        0.7, ge=0.0, le=1.0, description="items whose agreement is below this need one more vote"
    )
    max_annotators: int = Field(
        5, ge=1, description="items still below the threshold with this many votes are flagged"
    )
    relabel_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="most of a batch that may be labeled items sent to one more annotator, when "
        "their consensus is likely wrong (ActiveLab; 0: off)",
    )
    routing: Literal["none", "quality"] = Field(
        "none",
        description="quality: the more informative half of a batch goes to the better half of "
        "the annotators by their record (gold accuracy, else Dawid-Skene), the rest to the "
        "others (simulated and files backends; Label Studio Community cannot assign tasks)",
    )
    aggregation: Literal["majority", "dawid_skene"] = Field(
        "dawid_skene", description="how several annotators' labels become one"
    )
    request_retry_seconds: float = Field(
        90.0,
        gt=0.0,
        description="Label Studio: one request retries (exponential backoff) this long if the "
        "server is down or answers 5xx/429",
    )
    retries: int = Field(
        3, ge=0, description="then dispatch/collect are retried this many times (Prefect retries)"
    )
    retry_delay_seconds: float = Field(
        10.0, gt=0.0, description="before the first of those retries; doubled for each next one"
    )
    project_title: str = Field(
        "labelwise", min_length=1, description="Label Studio project (created if missing)"
    )
    files_dir: Path | None = Field(
        None, description="files backend: batches out, answers in (null: <work_dir>/annotation)"
    )
    file_format: Literal["csv", "jsonl", "prodigy"] = Field(
        "csv", description="files backend format (prodigy: Prodigy's JSONL tasks and answers)"
    )
    text_field: str = Field("text", description="batch column shown as text (text and ner)")
    image_field: str = Field("image_path", description="batch column holding the image URL/path")
    ner_labels: list[str] = Field(
        default_factory=list, description="entity types for ner (classes come from data.classes)"
    )


class ScaleSettings(Section):
    """Scoring a large pool: in this process or on a Dask cluster, in chunks of how many rows."""

    executor: Literal["local", "dask"] = Field(
        "local", description="local: threads in this process; dask: a Dask cluster"
    )
    dask_address: str | None = Field(
        None, description="scheduler of an existing Dask cluster (null: start a LocalCluster)"
    )
    n_workers: int = Field(2, ge=1, description="LocalCluster worker processes")
    threads_per_worker: int = Field(1, ge=1, description="threads in each LocalCluster worker")
    chunk_size: int = Field(
        250_000, gt=0, description="pool rows per scoring task (each worker reads its own)"
    )


class ServeSettings(Section):
    """``labelwise serve``: the scheduled deployment, and what a trigger does while a round runs."""

    flow: Literal["loop", "round"] = Field(
        "loop",
        description="serve the loop flow (labelwise-loop) or a single round (labelwise-round)",
    )
    deployment: str | None = Field(
        None, description="deployment name, '<flow>/<deployment>' in Prefect (null: project.name)"
    )
    cron: str | None = Field(
        "0 * * * *", description="schedule of the deployment (null: runs only when triggered)"
    )
    rounds_per_run: int | None = Field(
        1, ge=1, description="loop deployment: rounds per scheduled run (null: until a rule stops)"
    )
    when_busy: Literal["skip", "wait"] = Field(
        "skip",
        description="a trigger while a round of the project runs: skip it (ends 'Skipped', runs "
        "nothing) or wait for the slot",
    )
    slot_timeout_seconds: float | None = Field(
        None,
        gt=0.0,
        description="when_busy: wait: how long to wait for the round slot (null: as long as it takes)",
    )
    slot_lease_seconds: float = Field(
        60.0,
        ge=60.0,
        le=86400.0,
        description="the slot's lease, renewed while a round runs: a killed worker's slot is "
        "free again after at most this (+15 s); Prefect's minimum is 60",
    )
    heartbeat_seconds: int | None = Field(
        30,
        ge=30,
        description="flow-run heartbeat of served runs: a run silent for 3 beats is marked "
        "Crashed and rerun by the zombie automation (null: no heartbeats)",
    )
