"""Benchmark the bundled model on torch and on ONNX Runtime, and check that both give the same vectors.

    .venv/bin/python -m bench.embedder [--seconds 4]

For each runtime and call size (1, 8, 32 and 64 questions per call, drawn from the QQP sample), it prints
questions embedded per second, first with one call at a time and then with two calls side by side (what
the server's two batching lanes do). Then it prints how far apart the two runtimes' vectors are and the
best F1 each gives on the labelled QQP pairs, so a speed-up that changed the answers would show.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

#: The QQP sample in the shared data folder beside the repository (``../shared/data``).
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qqp_dev.jsonl.gz"
PAIRS = 3000


def labelled_pairs(limit: int) -> list[tuple[str, str, int]]:
    pairs: list[tuple[str, str, int]] = []
    with gzip.open(DATA, "rt") as lines:
        for line in lines:
            row = json.loads(line)
            pairs.append((row["text_a"], row["text_b"], int(row["label"])))
            if len(pairs) >= limit:
                break
    return pairs


def rate(
    embedder: SentenceTransformerEmbedder, texts: list[str], size: int, seconds: float, callers: int
) -> float:
    """Questions per second with ``callers`` threads each embedding ``size`` questions per call."""
    embedder.embed_sync(texts[:size])  # warm up
    done = [0] * callers
    stop = time.perf_counter() + seconds

    def caller(slot: int) -> None:
        cursor = slot * 997
        while time.perf_counter() < stop:
            start = cursor % (len(texts) - size)
            embedder.embed_sync(texts[start : start + size])
            cursor += size
            done[slot] += size

    threads = [threading.Thread(target=caller, args=(slot,)) for slot in range(callers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - began)


def best_f1(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    distance = 1.0 - (a * b).sum(axis=1)
    best = (0.0, 0.0)
    for threshold in np.arange(0.02, 0.5, 0.01):
        predicted = distance <= threshold
        f1 = 2 * float((predicted & (labels == 1)).sum()) / float(predicted.sum() + (labels == 1).sum())
        best = max(best, (f1, float(threshold)))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per cell")
    args = parser.parse_args(argv)
    pairs = labelled_pairs(PAIRS)
    questions = [a for a, _, _ in pairs] + [b for _, b, _ in pairs]
    labels = np.array([label for _, _, label in pairs])

    with tempfile.TemporaryDirectory(prefix="semcache-bench-models-") as cache:
        runtimes = {
            "torch": SentenceTransformerEmbedder(backend="torch"),
            "onnxruntime": SentenceTransformerEmbedder(backend="onnx", cache_dir=Path(cache)),
        }
        for name, embedder in runtimes.items():
            started = time.perf_counter()
            embedder.load_sync()
            what = "first load, export included" if name == "onnxruntime" else "load"
            print(f"{name}: {what} {time.perf_counter() - started:.1f} s")
        print(f"\n{'runtime':<12} {'per call':>8} {'1 caller q/s':>13} {'2 callers q/s':>14}")
        for name, embedder in runtimes.items():
            for size in (1, 8, 32, 64):
                one = rate(embedder, questions, size, args.seconds, 1)
                two = rate(embedder, questions, size, args.seconds, 2)
                print(f"{name:<12} {size:>8} {one:>13.0f} {two:>14.0f}", flush=True)

        vectors = {name: e.embed_sync(questions) for name, e in runtimes.items()}
        cosine = (vectors["torch"] * vectors["onnxruntime"]).sum(axis=1)
        print(
            f"\ncosine between the runtimes' vectors over {len(questions)} questions: "
            f"min {cosine.min():.6f}, mean {cosine.mean():.6f}"
        )
        for name, v in vectors.items():
            f1, threshold = best_f1(v[: len(pairs)], v[len(pairs) :], labels)
            print(f"{name}: best F1 on {len(pairs)} QQP pairs {f1:.4f} at distance {threshold:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
