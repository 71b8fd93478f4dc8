"""Speed of the numpy all-MiniLM-L6-v2 encoder: texts/second on short (SMS) and long (20
newsgroups, cut at 256 tokens) texts, 1 vs 2 BLAS threads, and a cache hit.

    python benchmarks/embedding_speed.py               # needs the datasets and embeddings extras
    python benchmarks/embedding_speed.py --n-short 200 --n-long 32
"""

from __future__ import annotations

import argparse
import tempfile
import time

from tasks.data.datasets import load_dataset
from tasks.features.embeddings import MiniLMEncoder, SentenceEmbedder


def texts_per_second(encoder: MiniLMEncoder, texts: list[str]) -> float:
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-short", type=int, default=500)
    parser.add_argument("--n-long", type=int, default=64)
    args = parser.parse_args()
    short = load_dataset("sms_spam").frame["text"].tolist()[: args.n_short]
    long = load_dataset("newsgroups").frame["text"].tolist()[: args.n_long]
    baseline = None
    for threads in (1, 2):
        encoder = MiniLMEncoder(blas_threads=threads)
        encoder.encode(short[:16])  # warm-up
        rates = texts_per_second(encoder, short), texts_per_second(encoder, long)
        baseline = baseline or rates
        print(
            f"blas_threads={threads}: short {rates[0]:6.1f} texts/s ({rates[0] / baseline[0]:.2f}x), "
            f"long {rates[1]:5.1f} texts/s ({rates[1] / baseline[1]:.2f}x)"
        )
    with tempfile.TemporaryDirectory() as cache:
        SentenceEmbedder(cache).embed(short)
        start = time.perf_counter()
        SentenceEmbedder(cache).embed(short)
        print(f"cache hit: {len(short) / (time.perf_counter() - start):,.0f} texts/s")


if __name__ == "__main__":
    main()
