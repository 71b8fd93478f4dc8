"""Label Studio labeling interfaces (label config XML), one per kind of task labelwise serves."""

from __future__ import annotations

from collections.abc import Sequence

#: the label configs whose answer is one of the classes (or, for ``ner``, spans of entity types)
KINDS = ("text_classification", "image_classification", "tabular_classification", "ner")
#: the label config whose answer is a number (regression)
NUMBER = "number"
#: the label configs whose answer is regions drawn on an image, and the shape each draws
REGIONS = {"object_detection": "rectangle", "polygon_segmentation": "polygon"}
#: every label config (``annotation.label_config``)
CONFIGS = (*KINDS, NUMBER, *REGIONS)
#: the name of the control that holds the answer, in every kind's interface
CONTROL = "label"

#: how an item is shown: the object tag, named as the task data key it reads
VIEWS = {
    "text": '<Text name="text" value="$text"/>',
    "image": '<Image name="image" value="$image"/>',
    "row": '<Table name="row" value="$row"/>',
}
#: the view of each label config that shows one kind of item
CONFIG_VIEWS = {
    "text_classification": "text",
    "image_classification": "image",
    "tabular_classification": "row",
    "ner": "text",
    "object_detection": "image",
    "polygon_segmentation": "image",
}
#: the view of the ``number`` config, by the project's ``data.kind`` (sentences as text)
DATA_VIEWS = {"text": "text", "tokens": "text", "image": "image", "tabular": "row"}


def _escape(value: str) -> str:
    return (
        str(value)
        .replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def item_view(kind: str, data_kind: str = "tabular") -> str:
    """How ``kind``'s interface shows an item: ``text``, ``image`` or ``row`` (a table row).
    Only the ``number`` config follows ``data_kind`` (the project's ``data.kind``)."""
    if kind not in CONFIGS:
        raise ValueError(f"unknown label config {kind!r}; use one of {', '.join(CONFIGS)}")
    if kind == NUMBER:
        if data_kind not in DATA_VIEWS:
            raise ValueError(
                f"label config {kind!r} cannot show items of data kind {data_kind!r}; "
                f"use one of {', '.join(DATA_VIEWS)}"
            )
        return DATA_VIEWS[data_kind]
    return CONFIG_VIEWS[kind]


def label_config(kind: str, classes: Sequence[str] = (), data_kind: str = "tabular") -> str:
    """The labeling interface (Label Studio XML) for ``kind``; ``classes`` are the choices, or the
    entity types for ``ner`` (``number`` has none: the answer is a number, shown over the item as
    ``data_kind`` is shown). The answer is always the control ``CONTROL`` (``label``)."""
    view = item_view(kind, data_kind)
    if kind in REGIONS:
        return box_label_config(classes, REGIONS[kind])
    if kind == NUMBER:
        # step "any": a target is rarely a whole number (Label Studio's default step is 1)
        return (
            f"<View>{VIEWS[view]}"
            f'<Number name="{CONTROL}" toName="{view}" step="any" required="true"/></View>'
        )
    if not classes:
        raise ValueError(f"label config {kind!r} needs at least one class")
    if kind == "ner":
        labels = "".join(f'<Label value="{_escape(c)}"/>' for c in classes)
        return f'<View><Labels name="{CONTROL}" toName="text">{labels}</Labels>{VIEWS[view]}</View>'
    choices = "".join(f'<Choice value="{_escape(c)}"/>' for c in classes)
    return (
        f"<View>{VIEWS[view]}"
        f'<Choices name="{CONTROL}" toName="{view}" choice="single" showInline="true">'
        f"{choices}</Choices></View>"
    )


#: the shapes annotators draw on an image (``box_label_config``): its control tag and result type
BOX_SHAPES = {"rectangle": "RectangleLabels", "polygon": "PolygonLabels"}


def box_label_config(classes: Sequence[str], shape: str = "rectangle") -> str:
    """The interface for drawing ``shape`` regions (rectangles or polygons) of ``classes`` on an
    image: the control ``CONTROL`` over the Image ``image`` (rectangles cannot be rotated, since a
    rotated box is no COCO or YOLO box)."""
    if shape not in BOX_SHAPES:
        raise ValueError(f"unknown box shape {shape!r}; use one of {', '.join(BOX_SHAPES)}")
    if not classes:
        raise ValueError(f"a {shape} config needs at least one class")
    if len(set(classes)) != len(classes):
        raise ValueError(f"the classes of a {shape} config repeat: {list(classes)}")
    tag = BOX_SHAPES[shape]
    labels = "".join(f'<Label value="{_escape(c)}"/>' for c in classes)
    rotate = ' canRotate="false"' if shape == "rectangle" else ""
    return (
        '<View><Image name="image" value="$image" zoom="true" zoomControl="true"/>'
        f'<{tag} name="{CONTROL}" toName="image"{rotate}>{labels}</{tag}></View>'
    )
