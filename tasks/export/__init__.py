"""Exports of the collected labels in the formats other tools train on (detection: COCO, YOLO)."""
