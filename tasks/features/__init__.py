"""Featurizers: tabular (ColumnTransformer), text (TF-IDF, sentence embeddings), image pixels.

Embeddings are imported from :mod:`tasks.features.embeddings` on demand (they need the
``embeddings`` extra).
"""

from tasks.features.images import PixelFeaturizer, image_pixels, load_image_folder
from tasks.features.tabular import ColumnTypes, infer_column_types, make_tabular_featurizer
from tasks.features.text import make_text_featurizer, make_tfidf_featurizer

__all__ = [
    "ColumnTypes",
    "PixelFeaturizer",
    "image_pixels",
    "infer_column_types",
    "load_image_folder",
    "make_tabular_featurizer",
    "make_text_featurizer",
    "make_tfidf_featurizer",
]
