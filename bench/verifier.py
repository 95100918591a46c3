"""Print the verifier's figures: QQP dev (report only), the near-miss report split, latency. Asserts nothing.

    python bench/verifier.py [--dev PATH] [--cap 0.40] [--target 0.90] [--skip-embed-latency]
                             [--near-misses-only]

The vectors of the pair files come from the bundled model through the cache folder ``.cache/verifier``
(computed once). Latency is measured on this machine: ``verdicts`` for one query and 5 candidates with
their vectors given (features + MLP + critical-token rules), and embedding 5 candidate texts with the
bundled model on ONNX Runtime (the cost a non-bundled embedder adds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.verification.corpus import DEFAULT_DATA_DIR, VectorCache, read_pairs
from engine.verification.evaluate import (
    DEFAULT_CAP,
    EvaluationReport,
    evaluate_pairs,
)
from engine.verification.model import DEFAULT_WEIGHTS, Verifier
from engine.verification.train import NEAR_MISSES


def show(title: str, report: EvaluationReport, curve_cuts: tuple[float, ...]) -> None:
    print(
        f"\n== {title}: {report.pairs} pairs, {report.positives} duplicates; cap {report.cap}, k {report.k}"
    )
    print(f"   cap recall (an entry asking the question within the cap): {report.cap_recall:.3f}")
    b, v = report.baseline, report.verifier
    print(
        f"   baseline (distance <= 0.15 + old checks): precision {b.precision:.3f}  served {b.served:.3f}  ({b.served_count} served)"
    )
    print(
        f"   verifier @ target {report.target_precision} (cut {report.cut:.3f}): precision {v.precision:.3f}  "
        f"served {v.served:.3f}  ({v.served_count} served)"
    )
    if report.pairwise_verifier is not None and report.pairwise_baseline is not None:
        pb, pv = report.pairwise_baseline, report.pairwise_verifier
        print(
            f"   pair-wise (own text_a only, no search): baseline precision {pb.precision:.3f} served {pb.served:.3f}; verifier precision {pv.precision:.3f} served {pv.served:.3f}"
        )
        print("   pair-wise verifier curve  cut   precision  served")
        for point in report.pairwise_curve:
            if any(abs(point.cut - c) < 1e-9 for c in curve_cuts):
                print(
                    f"                           {point.cut:5.3f}    {point.precision:.3f}    {point.served:.3f}"
                )
    print("   verifier curve (simulated cache)   cut   precision  served")
    for point in report.curve:
        if any(abs(point.cut - c) < 1e-9 for c in curve_cuts):
            print(f"                  {point.cut:5.3f}    {point.precision:.3f}    {point.served:.3f}")
    print("   baseline curve  dist   precision  served")
    for point in report.baseline_curve[::3]:
        print(f"                  {point.cut:5.2f}    {point.precision:.3f}    {point.served:.3f}")


def show_categories(report: EvaluationReport) -> None:
    print("   by category        pairs  baseline served/wrong   verifier served/wrong")
    base = {c.category: c for c in report.baseline.categories}
    for cat in report.verifier.categories:
        b = base[cat.category]
        if cat.positives:
            print(
                f"   {cat.category:16s} {cat.positives:5d}  served {b.served_rate:6.1%}          served {cat.served_rate:6.1%}"
            )
        if cat.negatives:
            print(
                f"   {cat.category:16s} {cat.negatives:5d}  wrong  {b.wrong_served_rate:6.1%}          wrong  {cat.wrong_served_rate:6.1%}"
            )


def pairwise_categories(pairs: list, verifier: Verifier, vectors: VectorCache, cut: float) -> None:  # type: ignore[type-arg]
    """Each text_b against its own text_a only (no competing entries), with ``verdicts``' logic."""
    texts_a, texts_b = [p.text_a for p in pairs], [p.text_b for p in pairs]
    scores, vetoes, near = verifier.assess_pairs(
        texts_b, vectors.vectors(texts_b), texts_a, vectors.vectors(texts_a)
    )
    passed = np.array([v is None for v in vetoes]) & (near | (scores >= cut))
    print("   pair-wise by category (own text_a only):")
    for category in sorted({p.category for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.category == category]
        label = pairs[idx[0]].label
        rate = float(np.mean(passed[idx]))
        print(f"   {category:16s} {len(idx):5d}  {'served' if label else 'wrong '} {rate:6.1%}")


def answered_by_another(report: EvaluationReport) -> None:
    """Duplicates the simulated cache answered with another entry than their own text_a, by category:
    right (another stored wording of their question, counted as served) or wrong."""
    sim = report.simulation
    assert sim is not None
    report_pairs = sim.pairs
    served = sim.served_entry(report.cut)
    counts: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(report_pairs):
        if pair.label == 1 and served[i] >= 0 and served[i] != sim.own[i]:
            verdict = "right" if sim.right(i, int(served[i])) else "WRONG"
            counts[(pair.category, verdict)] = counts.get((pair.category, verdict), 0) + 1
            print(f"      {pair.category} ({verdict}): {pair.text_b!r} -> {sim.entries[served[i]]!r}")
    print(f"   duplicates answered with another entry than their own text_a: {counts}")
    near_misses = [i for i, pair in enumerate(report_pairs) if pair.label == 0]
    wrong = [i for i in near_misses if served[i] >= 0 and not sim.right(i, int(served[i]))]
    print(
        f"   near misses served any wrong answer (their own text_a or another entry): {len(wrong)} of "
        f"{len(near_misses)} ({len(wrong) / max(len(near_misses), 1):.1%})"
    )
    for i in wrong:
        print(f"      {report_pairs[i].category}: {report_pairs[i].text_b!r} -> {sim.entries[served[i]]!r}")


def latency(verifier: Verifier, vectors: VectorCache, pairs: list, embed_latency: bool) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(pairs), size=min(400, len(pairs)), replace=False)
    texts = [pairs[i].text_b for i in chosen]
    cands = [pairs[i].text_a for i in chosen]
    qv, cv = vectors.vectors(texts), vectors.vectors(cands)
    cut = verifier.default_cut
    from engine.verification import critical, features

    def timed(clear: bool) -> np.ndarray:
        timings: list[float] = []
        for n in range(len(texts) - 5):
            group = [(cands[n + j], cv[n + j]) for j in range(5)]
            if clear:
                features.clear_caches()
            started = time.perf_counter()
            verifier.verdicts(texts[n], qv[n], group, cut)
            timings.append((time.perf_counter() - started) * 1000.0)
        return np.array(timings)

    # Cold: no text seen before, neither the query nor any candidate (the worst case).
    ms = timed(clear=True)
    print(
        f"\n== latency of verdicts(query, 5 candidates), vectors given, cold text caches: p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms  ({len(ms)} checks)"
    )
    # Warm candidates: each query is new, its candidates were analysed before (cached prompts recur).
    features.clear_caches()
    for text in cands:
        features.text_facts(text)
    ms = timed(clear=False)
    print(
        f"   new query, candidates already in the text cache: p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms"
    )
    if verifier.cascade is not None:
        cross = verifier.cascade.cross
        for count in (1, verifier.cascade.limit):
            c_times: list[float] = []
            for n in range(len(texts) - count):
                started = time.perf_counter()
                cross.logits([(texts[n], cands[n + j]) for j in range(count)])
                c_times.append((time.perf_counter() - started) * 1000.0)
            print(
                f"   the cross-encoder alone, {count} pair(s) (what a check adds when its candidates reach the gate): p50 {np.percentile(c_times, 50):.2f} ms  p99 {np.percentile(c_times, 99):.2f} ms"
            )
    rule_times: list[float] = []
    for a, b in zip(texts, cands, strict=True):
        features.clear_caches()
        started = time.perf_counter()
        critical.rejection_reason(a, b)
        rule_times.append((time.perf_counter() - started) * 1e6)
    print(
        f"   critical-token rules alone, per pair, cold: p50 {np.percentile(rule_times, 50):.0f} us  p99 {np.percentile(rule_times, 99):.0f} us"
    )
    if embed_latency:
        from engine.verification.corpus import bundled_embed_fn

        embed = bundled_embed_fn()
        embed(cands[:5])
        e_times: list[float] = []
        for n in range(0, 200, 5):
            started = time.perf_counter()
            embed(cands[n : n + 5])
            e_times.append((time.perf_counter() - started) * 1000.0)
        print(
            f"   embedding 5 candidate texts with the bundled model (ONNX Runtime): p50 {np.percentile(e_times, 50):.1f} ms  p99 {np.percentile(e_times, 99):.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dev", type=Path, default=DEFAULT_DATA_DIR / "qqp_dev.jsonl.gz")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--cap", type=float, default=DEFAULT_CAP)
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--skip-embed-latency", action="store_true")
    parser.add_argument(
        "--near-misses-only",
        action="store_true",
        help="only the near-miss report split (seconds, where QQP dev takes minutes)",
    )
    args = parser.parse_args()

    verifier = Verifier.load(args.weights)
    vectors = VectorCache()
    print(
        f"verifier {args.weights.name}: {args.weights.stat().st_size} bytes, default target precision {verifier.default_target_precision}, default cut {verifier.default_cut:.3f}"
    )
    print("calibration (calib split of QQP train): target -> cut")
    for target in (0.80, 0.85, 0.88, 0.90, 0.92, 0.95, 0.97):
        print(f"   {target:.2f} -> {verifier.cut_for_precision(target):.3f}")

    cuts = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    dev = read_pairs(args.dev)
    if not args.near_misses_only:
        report = evaluate_pairs(dev, verifier, vectors.vectors, args.target, cap=args.cap)
        show("QQP dev (report only)", report, cuts)

    near = [p for p in read_pairs(NEAR_MISSES) if p.split == "report"]
    near_report = evaluate_pairs(near, verifier, vectors.vectors, args.target, cap=args.cap)
    show("near-miss report split", near_report, cuts)
    show_categories(near_report)
    positives = [c for c in near_report.verifier.categories if c.positives]
    negatives = [c for c in near_report.verifier.categories if c.negatives]
    wrong = sum(c.wrong_served_rate * c.negatives for c in negatives) / max(
        sum(c.negatives for c in negatives), 1
    )
    chat = [c for c in positives if c.category == "paraphrase"]
    print(
        f"   overall: wrong-served {wrong:.1%} of {sum(c.negatives for c in negatives)} near misses; chat paraphrases served {chat[0].served_rate if chat else 0:.1%}"
    )

    pairwise_categories(near, verifier, vectors, near_report.cut)
    answered_by_another(near_report)

    if not args.near_misses_only:
        latency(verifier, vectors, dev, not args.skip_embed_latency)


if __name__ == "__main__":
    main()
