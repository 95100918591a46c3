"""Fine-tune the verifier's cross-encoder: ``python -m engine.verification.train_cross --seed 0``.

The MLP (train.py) judges a pair from the two texts' separate vectors; a cross-encoder reads both texts
together, so attention can line up "capital" with "capital city" and notice the one word that differs.
It starts from the bundled all-MiniLM-L6-v2's weights (a BERT of 6 layers, 384 wide) with a one-logit
head, and is fine-tuned on the same pairs as the MLP: the fit split of QQP train (the same hash split,
``train.split_of``) plus the near-miss ``train`` pairs; val picks the epoch; calib is never seen.
``--with-val`` trains on val too and keeps the last epoch (calib's AUC is only printed), ``--augment``
adds the pairs QQP's labels imply (augment.py); the model card says what they gained (not enough to ship).

The word, position and type embeddings stay frozen at the bundled model's values, so the shipped file
holds only the 6 transformer layers, the pooler and the head (about 10.8M numbers, fp16): the
embeddings (11.9M more) are read from the bundled model at load time (``cross_encoder.py``).

Deterministic for a seed: torch's deterministic algorithms, a fixed thread count, and the batches drawn
from a seeded generator. Writes ``data/cross_encoder.npz`` (+ manifest) and prints val AUC per epoch.
Measured on 2 shared cores: about 40 pairs/s (so ~12 minutes an epoch over 30,000 pairs).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.verification.augment import transitive_pairs
from engine.verification.corpus import DEFAULT_CACHE_DIR, DEFAULT_DATA_DIR, Pair, read_pairs
from engine.verification.cross_encoder import (
    DEFAULT_CROSS_WEIGHTS,
    MAX_TOKENS,
    bundled_model_dir,
    save_cross,
    shipped_state,
)
from engine.verification.train import NEAR_MISSES, roc_auc, split_of

#: Each near-miss train pair is seen this many times an epoch (~500 pairs against ~28,000 QQP pairs).
NEAR_MISS_REPEAT = 4
BATCH = 32
#: Batches are formed from pools of this many batches sorted by length, so a batch pads to similar
#: lengths (about 1.4x faster than random batches at QQP's lengths, p50 26 tokens, p90 49).
POOL = 50
LEARNING_RATE = 4e-5
WARMUP = 0.06


def _batches(pairs: Sequence[Pair], tokenize: Any, rng: random.Random) -> list[list[Pair]]:
    order = list(pairs)
    rng.shuffle(order)
    batches: list[list[Pair]] = []
    for begin in range(0, len(order), BATCH * POOL):
        pool = sorted(order[begin : begin + BATCH * POOL], key=lambda p: len(p.text_a) + len(p.text_b))
        batches.extend(pool[i : i + BATCH] for i in range(0, len(pool), BATCH))
    rng.shuffle(batches)
    return batches


def encode(tokenizer: Any, pairs: Sequence[Pair]) -> Any:
    """The model's input for ``pairs``: query (text_b) first, candidate (text_a) second, as the cache asks."""
    return tokenizer(
        [p.text_b for p in pairs],
        [p.text_a for p in pairs],
        padding=True,
        truncation=True,
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )


def predict(model: Any, tokenizer: Any, pairs: Sequence[Pair], batch: int = 64) -> np.ndarray:
    """The model's logits for ``pairs`` (query first, candidate second: text_b against text_a)."""
    import torch

    model.eval()
    logits: list[np.ndarray] = []
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i].text_a) + len(pairs[i].text_b))
    with torch.inference_mode():
        for begin in range(0, len(order), batch):
            part = [pairs[i] for i in order[begin : begin + batch]]
            logits.append(model(**encode(tokenizer, part)).logits.squeeze(-1).float().numpy())
    flat = np.concatenate(logits) if logits else np.zeros(0, dtype=np.float32)
    out = np.empty(len(pairs), dtype=np.float32)
    out[order] = flat
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fine-tune the verifier's cross-encoder (never reads dev).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR / "qqp_train.jsonl.gz")
    parser.add_argument("--near-misses", type=Path, default=NEAR_MISSES)
    parser.add_argument("--out", type=Path, default=DEFAULT_CROSS_WEIGHTS)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N fit pairs (smoke runs)")
    parser.add_argument(
        "--with-val",
        action="store_true",
        help="train on val too (the last epoch is kept; calib's AUC is printed for information)",
    )
    parser.add_argument(
        "--augment", action="store_true", help="add the pairs QQP's labels imply (augment.transitive_pairs)"
    )
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    qqp = read_pairs(args.data)
    near = [p for p in read_pairs(args.near_misses) if p.split == "train"]
    fit = [p for p in qqp if split_of(p) == "fit"]
    val = [p for p in qqp if split_of(p) == "val"]
    calib = [p for p in qqp if split_of(p) == "calib"]
    if args.limit:
        fit, val, calib = (
            fit[: args.limit],
            val[: max(200, args.limit // 5)],
            calib[: max(200, args.limit // 5)],
        )
    # With --with-val, val is trained on and calib only watched: the epochs are not chosen on it.
    learn, watch = (fit + val, calib) if args.with_val else (fit, val)
    learned = set(learn)
    derived = transitive_pairs(learn, [p for p in qqp if p not in learned], args.seed) if args.augment else []
    rng = random.Random(args.seed)
    # Both orders: the cache asks (query, stored prompt), and a pair means the same either way round.
    train_pairs = [
        Pair(p.text_b, p.text_a, p.label, p.category) if rng.random() < 0.5 else p
        for p in learn + derived + near * NEAR_MISS_REPEAT
    ]
    watched = "calib" if args.with_val else "val"
    print(
        f"{'fit + val' if args.with_val else 'fit'} {len(learn)} + derived {len(derived)} + near-miss "
        f"{len(near)} x{NEAR_MISS_REPEAT}; watching {watched} {len(watch)}",
        flush=True,
    )

    model_dir = bundled_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    for parameter in model.bert.embeddings.parameters():
        parameter.requires_grad = False
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=0.01)
    steps = args.epochs * ((len(train_pairs) + BATCH - 1) // BATCH)
    warmup = max(1, int(steps * WARMUP))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    run = f"seed{args.seed}" + ("-val" if args.with_val else "") + ("-aug" if args.augment else "")
    checkpoints = args.cache_dir / "cross" / run
    checkpoints.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    best: tuple[float, int] = (-1.0, 0)
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_started = time.perf_counter()
        batches = _batches(train_pairs, tokenizer, rng)
        for number, batch in enumerate(batches, 1):
            encoded = encode(tokenizer, batch)
            labels = torch.tensor([float(p.label) for p in batch])
            logits = model(**encoded).logits.squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if number % 100 == 0:
                rate = number * BATCH / (time.perf_counter() - epoch_started)
                print(
                    f"  epoch {epoch} batch {number}/{len(batches)} loss {loss.item():.3f} {rate:.0f} pairs/s",
                    flush=True,
                )
        scores = predict(model, tokenizer, watch)
        auc = roc_auc(np.array([p.label for p in watch]), scores)
        history.append(
            {
                "epoch": epoch,
                f"{watched}_auc": round(auc, 4),
                "seconds": round(time.perf_counter() - epoch_started),
            }
        )
        print(f"epoch {epoch}: {watched} AUC {auc:.4f}", flush=True)
        torch.save(shipped_state(model), checkpoints / f"epoch{epoch}.pt")
        np.save(checkpoints / f"{watched}_epoch{epoch}.npy", scores)
        if auc > best[0] or args.with_val:  # trained on val: the last epoch, not one chosen on calib
            best = (auc, epoch)

    chosen = torch.load(checkpoints / f"epoch{best[1]}.pt")
    meta = {
        "seed": args.seed,
        "epochs": args.epochs,
        "chosen_epoch": best[1],
        f"{watched}_auc": round(best[0], 4),
        "history": history,
        "fit_pairs": len(learn),
        "with_val": args.with_val,
        "derived_pairs": len(derived),
        "near_miss_pairs": len(near),
        "training_seconds": round(time.perf_counter() - started),
    }
    save_cross({k: v.float().numpy() for k, v in chosen.items()}, meta, args.out)
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
