"""NER answers as a tag per token: annotators mark character spans on the sentence shown to them
(its tokens joined by single spaces); the loop learns one BIO tag per token.

``spans_to_tags`` turns Label Studio's (or a file's) spans into tags, ``tags_to_spans`` turns a
model's tags into the spans pre-annotating a task. A span must cover whole tokens; two spans
may not overlap (a token has one tag).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

OUTSIDE = "O"


class SpanError(ValueError):
    """A span does not fit the sentence's tokens (overlapping, outside the text, mid-token)."""


def token_offsets(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character (start, end) of each token in ``" ".join(tokens)``."""
    out, position = [], 0
    for token in tokens:
        out.append((position, position + len(token)))
        position += len(token) + 1
    return out


def sentence(tokens: Sequence[str]) -> str:
    """The text annotators see: the tokens joined by single spaces."""
    return " ".join(tokens)


def spans_to_tags(spans: Sequence[dict[str, Any]], tokens: Sequence[str]) -> list[str]:
    """BIO tags of ``tokens`` from character spans ``[{start, end, label}]`` on
    :func:`sentence`; a token is inside a span when its characters overlap it."""
    tags = [OUTSIDE] * len(tokens)
    offsets = token_offsets(tokens)
    text_length = len(sentence(tokens))
    for span in sorted(spans, key=lambda s: (int(s["start"]), int(s["end"]))):
        start, end, label = int(span["start"]), int(span["end"]), str(span["label"])
        if not 0 <= start < end <= text_length:
            raise SpanError(
                f"span {start}-{end} ({label}) is outside the {text_length}-character text"
            )
        inside = [i for i, (a, b) in enumerate(offsets) if a < end and start < b]
        if not inside:
            raise SpanError(f"span {start}-{end} ({label}) covers no token")
        taken = [i for i in inside if tags[i] != OUTSIDE]
        if taken:
            raise SpanError(
                f"span {start}-{end} ({label}) overlaps another span at token {taken[0]} "
                f"({tokens[taken[0]]!r}): a token has one tag"
            )
        tags[inside[0]] = f"B-{label}"
        for i in inside[1:]:
            tags[i] = f"I-{label}"
    return tags


def tags_to_spans(tags: Sequence[str], tokens: Sequence[str]) -> list[dict[str, Any]]:
    """Character spans of the entities of BIO ``tags`` on :func:`sentence` (pre-annotations)."""
    from tasks.model.metrics import entity_spans

    offsets = token_offsets(tokens)
    return [
        {"start": offsets[a][0], "end": offsets[b - 1][1], "label": kind}
        for a, b, kind in sorted(entity_spans(tags))
    ]


def as_tag_answer(label: Any, tokens: Sequence[str]) -> str:
    """An NER answer as the JSON list of tags the loop stores: a tag list as is, spans (a list
    of ``{start, end, label}``) converted; anything else raises :class:`SpanError`."""
    try:
        value = json.loads(label) if isinstance(label, str) else label
    except json.JSONDecodeError:
        raise SpanError(f"expected a JSON list of tags or spans, got {str(label)[:60]!r}") from None
    if not isinstance(value, list):
        raise SpanError(f"expected a JSON list of tags or spans, got {str(label)[:60]!r}")
    if all(isinstance(v, dict) for v in value):  # spans; none at all: no entity
        return json.dumps(spans_to_tags(value, tokens))
    if not all(isinstance(v, str) for v in value):
        raise SpanError("expected a list of tags (text) or of spans ({start, end, label})")
    return json.dumps(value)


def tag_answers(answers: Any, tokens_by_id: dict[str, list[str]]) -> Any:
    """``answers`` (label-log rows) with span answers turned into tag lists; a row that does not
    convert keeps its label, for the label gate to reject with the reason."""
    out = answers.copy()

    def convert(row: Any) -> Any:
        tokens = tokens_by_id.get(str(row["id"]))
        if tokens is None:
            return row["label"]
        try:
            return as_tag_answer(row["label"], tokens)
        except SpanError:
            return row["label"]

    if len(out):
        out["label"] = out.apply(convert, axis=1)
    return out
