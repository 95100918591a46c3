"""Verified hits (issue 13): the check path with the real verifier and the real model, on both stores and
both embedders (the bundled model in process, whose vectors the verifier reuses, and the Ollama protocol
peer, for which the verifier embeds the candidates with the bundled model itself); explain over HTTP; the
precision target; SEMCACHE_VERIFY=off; feedback in one process; the weights file's integrity.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.server import create_app
from engine.stores.local import LocalStore
from engine.verification.model import DEFAULT_WEIGHTS, Verifier, VerifierError
from tests.conftest import SharedEmbedder
from tests.support.cli import run_cli
from tests.test_server import serving

#: The keys of the seed's /cache/check response (and ours before `explain`): unchanged by default.
SEED_CHECK_KEYS = {"prompt", "is_hit", "matches", "lookup_time_ms", "scope", "threshold", "exact", "rejected"}
FIXED_SET = [
    ("Who wrote Hamlet?", "Who was the author of Hamlet?"),
    ("How do I reverse a list in Python?", "What's the way to reverse a Python list?"),
    ("What is machine learning?", "Can you explain machine learning?"),
    ("At what temperature does water boil?", "What temperature does water boil at?"),
    ("What is Redis?", "Can you tell me what Redis is?"),
    ("What is the refund policy?", "What is our refund policy?"),
]


async def test_a_paraphrase_is_served_with_its_score(cache: SemanticCache) -> None:
    stored = await cache.store("Who wrote Hamlet?", "William Shakespeare.")
    result = await cache.check("Who was the author of Hamlet?")
    assert result.is_hit and result.best is not None and result.best.entry.key == stored.key
    served = [c for c in result.candidates if c.served]
    assert len(served) == 1 and served[0].score is not None and served[0].cut is not None
    assert served[0].score >= served[0].cut
    assert served[0].reason == f"served: score {served[0].score:.2f} >= cut {served[0].cut:.2f}"


async def test_a_near_miss_is_refused_with_its_reason(cache: SemanticCache) -> None:
    await cache.store("How do I convert 5 km to miles?", "Multiply by 0.621: 3.1 miles.")
    result = await cache.check("How do I convert 50 km to miles?")
    assert not result.is_hit and result.matches == []
    [candidate] = result.candidates
    assert candidate.match.distance < 0.15  # the old static threshold would have served it
    assert not candidate.passed and not candidate.served
    assert candidate.reason == "numbers differ: 50 vs 5"
    assert [reason for _, reason in result.rejected] == ["numbers differ: 50 vs 5"]
    assert result.best_refused is candidate


async def test_an_exact_repeat_is_served_without_a_score(cache: SemanticCache) -> None:
    await cache.store("How do I convert 5 km to miles?", "3.1 miles.")
    result = await cache.check("how do I convert 5 KM to miles?")
    assert result.exact and result.is_hit
    assert [(c.score, c.served, c.reason) for c in result.candidates] == [(None, True, "exact repeat")]


async def test_verdicts_for_the_lab_follow_the_rule_of_check(cache: SemanticCache) -> None:
    await cache.store("Who wrote Hamlet?", "Shakespeare.")
    await cache.store("How do I convert 5 km to miles?", "3.1 miles.")
    nearest = await cache.nearest("Who was the author of Hamlet?", k=5)
    assert all(m.vector is not None for m in nearest)
    loose = await cache.verdicts("Who was the author of Hamlet?", nearest, threshold=2.0)
    served = [c.match.entry.prompt for c in loose if c.served]
    assert served == [(await cache.check("Who was the author of Hamlet?")).best.entry.prompt]  # type: ignore[union-attr]
    tight = await cache.verdicts("Who was the author of Hamlet?", nearest, threshold=0.0)
    assert not any(c.passed for c in tight)
    assert all(c.reason.startswith("over the distance cap") for c in tight)


async def test_a_higher_target_precision_gives_a_higher_cut_and_no_more_hits(
    make_store: Any, embedder: SharedEmbedder
) -> None:
    verifier = Verifier.load()
    assert verifier.cut_for_precision(0.95) >= verifier.cut_for_precision(0.88)
    hits: dict[float, int] = {}
    for target in (0.8, 0.88, 0.95):
        cache = SemanticCache(make_store(), embedder, CachePolicy(target_precision=target))
        await cache.start()
        await cache.clear()
        for stored, _ in FIXED_SET:
            await cache.store(stored, f"answer: {stored}")
        results = [await cache.check(query) for _, query in FIXED_SET]
        hits[target] = sum(r.is_hit for r in results)
        cuts = {c.cut for r in results for c in r.candidates if c.cut is not None}
        assert cuts == {verifier.cut_for_precision(target)}
        await cache.close()
    assert hits[0.8] >= hits[0.88] >= hits[0.95]
    assert hits[0.8] > hits[0.95]


async def test_verify_off_is_the_seed_distance_only_rule(make_store: Any, embedder: SharedEmbedder) -> None:
    cache = SemanticCache(make_store(), embedder, CachePolicy.plain())
    assert cache.policy.threshold == 0.15 and not cache.policy.verify_candidates
    await cache.start()
    assert cache.verifier is None  # not even loaded
    await cache.store("How do I convert 5 km to miles?", "3.1 miles.")
    result = await cache.check("How do I convert 50 km to miles?")
    assert result.is_hit  # distance alone: the near miss is served, as by the seed
    [candidate] = result.candidates
    assert candidate.score is None and candidate.served
    assert candidate.reason.startswith("served: distance ")
    await cache.close()


def test_settings_derive_the_cap_from_verification() -> None:
    assert Settings.load().distance_threshold == 0.40
    assert Settings.load(verify_candidates=False).distance_threshold == 0.15
    assert Settings.load(verify_candidates=False, distance_threshold=0.3).distance_threshold == 0.3
    from engine.assembly import policy_from_settings

    policy = policy_from_settings(Settings.load(target_precision=0.95))
    assert (policy.threshold, policy.verify_candidates, policy.target_precision) == (0.40, True, 0.95)


def test_a_target_precision_out_of_range_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import ConfigError

    monkeypatch.setenv("SEMCACHE_TARGET_PRECISION", "1.5")
    with pytest.raises(ConfigError, match=r"SEMCACHE_TARGET_PRECISION=1\.5: must be a precision from 0\.5"):
        Settings.load()


# -- feedback in one process (across processes: test_feedback_replicas.py) --------------------------------


async def test_feedback_refuses_restores_tightens_and_evicts(cache: SemanticCache) -> None:
    entry = await cache.store("Who wrote Hamlet?", "Shakespeare.")
    query = "Who was the author of Hamlet?"
    assert (await cache.check(query)).is_hit

    wrong = await cache.feedback(query, entry.key, False)
    assert (wrong.wrong, wrong.right, wrong.evicted) == (1, 0, False)
    refused = await cache.check(query)
    assert not refused.is_hit
    assert [c.reason for c in refused.candidates] == ["reported wrong for this prompt"]
    # Another prompt still reaches the entry, at a cut tightened by the wrong report.
    other = await cache.check("Who is the author of Hamlet?")
    tightened = [c.cut for c in other.candidates]
    assert tightened and tightened[0] is not None
    assert tightened[0] > cache.verifier.cut_for_precision(cache.verifier.default_target_precision)  # type: ignore[union-attr]

    right = await cache.feedback(query, entry.key, True)
    assert (right.wrong, right.right, right.evicted) == (1, 1, False)
    assert (await cache.check(query)).is_hit

    await cache.feedback("Who penned Hamlet?", entry.key, False)
    evicted = await cache.feedback("Hamlet was written by whom?", entry.key, False)
    assert (evicted.wrong, evicted.right, evicted.evicted) == (3, 1, True)
    assert await cache.get(entry.key) is None
    stats = await cache.stats()
    assert (stats.feedback_wrong, stats.feedback_right) == (3, 1)


async def test_feedback_on_an_unknown_key_is_not_found(cache: SemanticCache) -> None:
    from engine.errors import NotFoundError

    with pytest.raises(NotFoundError):
        await cache.feedback("Who wrote Hamlet?", "0" * 32, False)


# -- over HTTP -------------------------------------------------------------------------------------------


async def test_explain_shapes_over_http(cache: SemanticCache, tmp_path: Path) -> None:
    async with serving(create_app(Settings.load(data_dir=tmp_path / "data"), cache)) as http:
        await http.post("/cache/store", json={"prompt": "How do I convert 5 km to miles?", "response": "3.1"})
        await http.post("/cache/store", json={"prompt": "Who wrote Hamlet?", "response": "Shakespeare."})

        plain = (await http.post("/cache/check", json={"prompt": "How do I convert 50 km to miles?"})).json()
        assert set(plain) == SEED_CHECK_KEYS
        assert plain["is_hit"] is False and plain["rejected"][0]["reason"] == "numbers differ: 50 vs 5"

        body = {"prompt": "How do I convert 50 km to miles?", "explain": True}
        explained = (await http.post("/cache/check", json=body)).json()
        assert set(explained) == SEED_CHECK_KEYS | {"explain"}
        first = explained["explain"][0]
        assert set(first) == {"key", "prompt", "vector_distance", "score", "served", "reason"}
        assert first["prompt"] == "How do I convert 5 km to miles?" and first["served"] is False
        assert first["reason"] == "numbers differ: 50 vs 5" and isinstance(first["score"], float)

        hit = (
            await http.post("/cache/check", json={"prompt": "Who was the author of Hamlet?", "explain": True})
        ).json()
        served = [c for c in hit["explain"] if c["served"]]
        assert hit["is_hit"] and len(served) == 1 and served[0]["reason"].startswith("served: score ")
        assert served[0]["key"] == hit["matches"][0]["key"]

        search = (await http.post("/cache/search", json={"prompt": "Who was the author of Hamlet?"})).json()
        assert set(search) == {"prompt", "scope", "matches"}
        judged = (
            await http.post(
                "/cache/search",
                json={"prompt": "Who was the author of Hamlet?", "verdicts": True, "threshold": 0.4},
            )
        ).json()
        assert [v["key"] for v in judged["verdicts"]] == [m["key"] for m in judged["matches"]]
        assert sum(v["served"] for v in judged["verdicts"]) == 1


async def test_feedback_route_and_its_counters(cache: SemanticCache, tmp_path: Path) -> None:
    async with serving(create_app(Settings.load(data_dir=tmp_path / "data"), cache)) as http:
        key = (
            await http.post("/cache/store", json={"prompt": "Who wrote Hamlet?", "response": "Shakespeare."})
        ).json()["key"]
        query = "Who was the author of Hamlet?"
        assert (await http.post("/cache/check", json={"prompt": query})).json()["is_hit"]
        answer = await http.post("/cache/feedback", json={"prompt": query, "key": key, "correct": False})
        assert answer.status_code == 200
        assert answer.json() == {"success": True, "key": key, "wrong": 1, "right": 0, "evicted": False}
        again = (await http.post("/cache/check", json={"prompt": query, "explain": True})).json()
        assert not again["is_hit"] and again["explain"][0]["reason"] == "reported wrong for this prompt"

        missing = await http.post(
            "/cache/feedback", json={"prompt": query, "key": "0" * 32, "correct": False}
        )
        assert missing.status_code == 404
        bad = await http.post("/cache/feedback", json={"prompt": query, "key": key, "correct": "maybe"})
        assert bad.status_code == 422
        empty = await http.post("/cache/feedback", json={"prompt": "", "key": key, "correct": True})
        assert empty.status_code == 422

        stats = (await http.get("/cache/stats")).json()
        assert (stats["feedback_wrong"], stats["feedback_right"]) == (1, 0)
        metrics = (await http.get("/metrics")).text
        assert 'semcache_feedback_total{verdict="wrong"} 1.0' in metrics
        assert 'semcache_verifier_refusals_total{reason_kind="reported wrong for this prompt"} 1.0' in metrics


# -- the weights file's integrity ------------------------------------------------------------------------


def damaged_copy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "verifier.npz"
    shutil.copy(DEFAULT_WEIGHTS, weights)
    shutil.copy(DEFAULT_WEIGHTS.with_suffix(".json"), folder / "verifier.json")
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    return weights


async def test_damaged_weights_fail_the_start_never_serve_everything(
    tmp_path: Path, embedder: SharedEmbedder
) -> None:
    weights = damaged_copy(tmp_path / "weights")
    cache = SemanticCache(LocalStore(tmp_path / "data", name="damaged"), embedder, verifier_path=weights)
    with pytest.raises(VerifierError, match="are damaged"):
        await cache.start()
    assert not cache.ready
    await cache.close()

    # SEMCACHE_VERIFY=off does not read it.
    plain = SemanticCache(
        LocalStore(tmp_path / "data", name="plain"), embedder, CachePolicy.plain(), verifier_path=weights
    )
    await plain.start()
    assert plain.ready
    await plain.close()


async def test_a_server_with_damaged_weights_is_not_ready_and_says_why(tmp_path: Path) -> None:
    weights = damaged_copy(tmp_path / "weights")
    app = create_app(Settings.load(data_dir=tmp_path / "data", verifier_path=weights))
    async with serving(app) as http:
        for _ in range(600):  # the start runs in the background; its failure is recorded at once
            answer = await http.get("/health/ready")
            if answer.json()["status"] == "failed":
                break
            await asyncio.sleep(0.05)
        assert answer.status_code == 503
        assert answer.json()["ready"] is False and "are damaged" in answer.json()["detail"]
        check = await http.post("/cache/check", json={"prompt": "Who wrote Hamlet?"})
        assert check.status_code == 503 and check.json()["error"] == "verifier_error"


def test_the_cli_exits_non_zero_with_one_line_on_damaged_weights(tmp_path: Path) -> None:
    weights = damaged_copy(tmp_path / "weights")
    done = run_cli(
        tmp_path / "data", "check", "Who wrote Hamlet?", env={"SEMCACHE_VERIFIER_PATH": str(weights)}
    )
    assert done.returncode == VerifierError.exit_code
    lines = [line for line in done.stderr.splitlines() if line.startswith("semcache-tui:")]
    assert len(lines) == 1 and "are damaged" in lines[0] and "reinstall semcache" in lines[0]
    missing = run_cli(
        tmp_path / "data",
        "check",
        "Who wrote Hamlet?",
        "--json",
        env={"SEMCACHE_VERIFIER_PATH": str(tmp_path / "nowhere.npz")},
    )
    assert missing.returncode == VerifierError.exit_code
    assert json.loads(missing.stderr.strip().splitlines()[-1])["error"] == "verifier_error"


# -- the command line ------------------------------------------------------------------------------------


def test_cli_check_explains_and_feedback_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli(data, "store", "How do I convert 5 km to miles?", "3.1 miles.").returncode == 0
    stored = json.loads(run_cli(data, "store", "Who wrote Hamlet?", "Shakespeare.", "--json").stdout)

    miss = run_cli(data, "check", "How do I convert 50 km to miles?")
    assert (
        miss.returncode == 1 and "closest refused" in miss.stdout and "numbers differ: 50 vs 5" in miss.stdout
    )

    hit = json.loads(run_cli(data, "check", "Who was the author of Hamlet?", "--json").stdout)
    assert hit["is_hit"] and any(c["served"] for c in hit["explain"])
    assert {"key", "prompt", "vector_distance", "score", "served", "reason"} <= set(hit["explain"][0])

    refused = run_cli(
        data, "feedback", stored["key"], "--prompt", "Who was the author of Hamlet?", "--wrong", "--read-only"
    )
    assert refused.returncode != 0 and "--read-only" in refused.stderr
    reported = run_cli(
        data, "feedback", stored["key"], "--prompt", "Who was the author of Hamlet?", "--wrong", "--json"
    )
    assert reported.returncode == 0
    assert json.loads(reported.stdout) == {
        "success": True,
        "key": stored["key"],
        "wrong": 1,
        "right": 0,
        "evicted": False,
    }
    again = run_cli(data, "check", "Who was the author of Hamlet?")
    assert again.returncode == 1 and "reported wrong for this prompt" in again.stdout
