"""Small images -> fixed-size, flattened grey-scale pixels scaled to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})


def list_images(folder: Path | str) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (the row order of the features)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _grey(image: np.ndarray | Image.Image | Path | str, max_value: float | None) -> Image.Image:
    """One image as a 32-bit float grey image ("F" mode) with values in [0, 1]."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as img:
            image = img.convert("L")
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    else:
        arr = np.asarray(image)
        if max_value is None:  # integers are 8-bit grey levels; floats are already in [0, 1]
            max_value = 255.0 if np.issubdtype(arr.dtype, np.integer) else 1.0
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            arr = arr[..., :3].mean(axis=-1)
        if arr.ndim != 2:
            raise ValueError(f"expected an (h, w) or (h, w, 3|4) image, got shape {arr.shape}")
        arr = np.clip(arr.astype(np.float32) / np.float32(max_value), 0.0, 1.0)
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))


def image_pixels(
    images: Sequence[np.ndarray | Image.Image | Path | str] | np.ndarray,
    size: tuple[int, int] = (28, 28),
    max_value: float | None = None,
) -> np.ndarray:
    """Images (paths, PIL images or arrays) -> (n, h*w) float32 grey levels in [0, 1].

    Each image is converted to grey, resized to ``size`` = (height, width) (area averaging when
    shrinking, bilinear when enlarging) and flattened row by row. Arrays are read as
    0..255 (integers) or 0..1 (floats) unless ``max_value`` gives their white level (e.g. 16 for
    scikit-learn's digits).
    """
    height, width = size
    out = np.empty((len(images), height * width), dtype=np.float32)
    for i, image in enumerate(images):
        img = _grey(image, max_value)
        if img.size != (width, height):
            # shrinking: area averaging (no aliasing, exact block means); enlarging: bilinear
            shrink = width <= img.width and height <= img.height
            resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
            img = img.resize((width, height), resample)
        out[i] = np.clip(np.asarray(img, dtype=np.float32).ravel(), 0.0, 1.0)
    return out


def load_image_folder(folder: Path | str, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Every image in ``folder`` (sorted by name) -> (n, h*w) pixels, see :func:`image_pixels`."""
    return image_pixels(list_images(folder), size=size)


class PixelFeaturizer(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: images (paths or arrays) -> flattened [0, 1] pixels."""

    def __init__(self, size: tuple[int, int] = (28, 28), max_value: float | None = None):
        self.size = size
        self.max_value = max_value

    def fit(self, X, y=None):
        return self

    def __sklearn_is_fitted__(self) -> bool:  # stateless: fitted from the start
        return True

    def transform(self, X) -> np.ndarray:
        return image_pixels(X, size=tuple(self.size), max_value=self.max_value)
