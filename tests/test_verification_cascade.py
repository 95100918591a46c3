"""The verifier's second stage, real everywhere: the shipped cross-encoder (exported to ONNX Runtime by the
test session), the shipped cascade and the bundled model's vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.verification.cascade import Cascade
from engine.verification.cross_encoder import DEFAULT_CROSS_WEIGHTS, CrossEncoder, read_shipped
from engine.verification.model import CASCADE_FILE, DATA_DIR, DEFAULT_WEIGHTS, Verifier, VerifierError
from tests.conftest import shared_embedder


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier.load()


def embed(texts: list[str]) -> np.ndarray:
    return shared_embedder().embed_sync(list(texts))


def verdicts(verifier: Verifier, query: str, stored: list[str], cut: float) -> list:  # type: ignore[type-arg]
    vectors = embed([query, *stored])
    return verifier.verdicts(query, vectors[0], list(zip(stored, vectors[1:], strict=True)), cut)


def copy_verifier(tmp_path: Path) -> Path:
    """The shipped verifier's files (MLP, cascade, cross-encoder) in a folder of the test's own."""
    folder = tmp_path / "verifier"
    folder.mkdir()
    for name in ("verifier.npz", "verifier.json", CASCADE_FILE, "cross_encoder.npz", "cross_encoder.json"):
        shutil.copy(DATA_DIR / name, folder / name)
    return folder / DEFAULT_WEIGHTS.name


def test_the_shipped_verifier_is_a_cascade_calibrated_above_its_gate(verifier: Verifier) -> None:
    cascade = verifier.cascade
    assert cascade is not None
    assert verifier.calibration is cascade.calibration
    cuts = [p.cut for p in cascade.calibration]
    precisions = [p.precision for p in cascade.calibration]
    assert cuts == sorted(cuts) and min(cuts) >= cascade.gate
    assert precisions == sorted(precisions)
    # No target can bring the cut under the gate, where scores are the MLP's alone.
    assert verifier.cut_for_precision(0.01) >= cascade.gate
    assert verifier.default_cut >= cascade.gate


def test_a_cross_checked_score_is_the_blend_of_both_stages(verifier: Verifier) -> None:
    cascade = verifier.cascade
    assert cascade is not None
    query, stored = "Who wrote Hamlet?", "Who was the author of Hamlet?"
    vectors = embed([query, stored])
    mlp_only = Verifier.load(with_cascade=False)
    (mlp,) = mlp_only.verdicts(query, vectors[0], [(stored, vectors[1])], 0.0)
    (final,) = verifier.verdicts(query, vectors[0], [(stored, vectors[1])], 0.0)
    assert mlp.score >= cascade.gate  # so it is cross-checked
    expected = cascade.blended(np.array([mlp.score]), cascade.cross.logits([(query, stored)]))
    assert final.score == pytest.approx(float(expected[0]), abs=1e-6)
    assert final.score != pytest.approx(mlp.score, abs=1e-3)


def test_the_cascade_serves_a_paraphrase_and_refuses_a_changed_subject(verifier: Verifier) -> None:
    served, refused = verdicts(
        verifier,
        "Who wrote Hamlet?",
        ["Who was the author of Hamlet?", "Who was the author of Macbeth?"],
        verifier.default_cut,
    )
    assert served.passed, served
    assert not refused.passed, refused


def test_only_the_likeliest_candidates_are_cross_checked(verifier: Verifier) -> None:
    cascade = verifier.cascade
    assert cascade is not None
    query = "How do I learn to play the guitar?"
    stored = [
        "How can I learn guitar?",
        "What is the best way to learn to play guitar?",
        "How do I teach myself guitar?",
        "How can I learn to play guitar on my own?",
        "What is the boiling point of water?",
    ]
    vectors = embed([query, *stored])
    pairs = list(zip(stored, vectors[1:], strict=True))
    mlp = Verifier.load(with_cascade=False).verdicts(query, vectors[0], pairs, 0.0)
    found = verifier.verdicts(query, vectors[0], pairs, 0.0)
    eligible = sorted(
        (i for i, v in enumerate(mlp) if v.score >= cascade.gate and v.reason != "near repeat"),
        key=lambda i: -mlp[i].score,
    )
    assert len(eligible) > cascade.limit, mlp  # the case needs more plausible candidates than the limit
    for rank, i in enumerate(eligible):
        unchecked = found[i].reason.startswith("not cross-checked")
        assert unchecked == (rank >= cascade.limit), (rank, found[i])
        assert found[i].passed != unchecked
    # Far under the gate: refused on the MLP's own score, which is kept.
    assert found[-1].score == pytest.approx(mlp[-1].score) and found[-1].score < cascade.gate


def test_cross_encoder_logits_do_not_depend_on_the_batch(verifier: Verifier) -> None:
    assert verifier.cascade is not None
    cross = verifier.cascade.cross
    pairs = [("How do I learn Python?", "What is the best way to learn Python?"), ("Hi", "x " * 200)]
    together = cross.logits(pairs)
    alone = np.concatenate([cross.logits([pair]) for pair in pairs])
    assert np.allclose(together, alone, atol=1e-3)
    assert together[0] > together[1]


def test_a_missing_or_damaged_cross_encoder_is_a_clear_error(tmp_path: Path) -> None:
    weights = copy_verifier(tmp_path)
    cross = weights.parent / "cross_encoder.npz"
    blob = bytearray(cross.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    cross.write_bytes(bytes(blob))
    with pytest.raises(VerifierError, match="damaged") as caught:
        Verifier.load(weights)
    assert caught.value.hint and "train_cross" in caught.value.hint
    cross.unlink()
    with pytest.raises(VerifierError, match="missing"):
        Verifier.load(weights)


def test_a_cascade_calibrated_with_another_cross_encoder_is_refused(tmp_path: Path) -> None:
    weights = copy_verifier(tmp_path)
    cascade_file = weights.parent / CASCADE_FILE
    document = json.loads(cascade_file.read_text())
    document["cross_encoder_sha256"] = "0" * 64
    cascade_file.write_text(json.dumps(document))
    with pytest.raises(VerifierError, match="not the one the cascade"):
        Verifier.load(weights)
    cascade_file.write_text("{not json")
    with pytest.raises(VerifierError, match="unreadable"):
        Verifier.load(weights)


def test_a_damaged_onnx_export_is_made_again(tmp_path: Path) -> None:
    first = CrossEncoder.load(DEFAULT_CROSS_WEIGHTS, tmp_path)
    expected = first.logits([("How do I learn Python?", "How can I learn Python?")])
    (first.folder / "model.onnx").write_bytes(b"not a model")
    again = CrossEncoder.load(DEFAULT_CROSS_WEIGHTS, tmp_path)
    assert np.allclose(
        again.logits([("How do I learn Python?", "How can I learn Python?")]), expected, atol=1e-4
    )


def test_the_cascade_names_the_shipped_cross_encoder() -> None:
    _, manifest = read_shipped(DEFAULT_CROSS_WEIGHTS)
    document = json.loads((DATA_DIR / CASCADE_FILE).read_text())
    assert document["cross_encoder_sha256"] == manifest["sha256"]
    assert isinstance(Cascade.load(DATA_DIR / CASCADE_FILE), Cascade)


def test_the_configured_model_cache_holds_the_cross_encoders_export(tmp_path: Path) -> None:
    """``model_cache_dir`` from the settings (a ``.env`` file, not only the environment) reaches the
    verifier as it reaches the embedder: its cross-encoder is read from (or exported into) that folder."""
    from engine.assembly import build_cache
    from engine.config import Settings

    exported = CrossEncoder.load(DEFAULT_CROSS_WEIGHTS).folder  # the test session's export
    models = tmp_path / "models"
    shutil.copytree(exported, models / exported.name)  # already exported there: no second export
    settings = Settings(data_dir=tmp_path / "data", model_cache_dir=models)
    cache = build_cache(settings)
    verifier = cache.load_verifier()
    assert verifier.cascade is not None and verifier.cascade.cross.folder == models / exported.name


def test_a_process_opens_an_export_once_and_checks_an_unchanged_file_once(tmp_path: Path) -> None:
    """Every cache start loads the verifier: the second load shares the first one's ONNX Runtime session,
    and a file changed since (here: damaged) is checked again, never taken on trust."""
    assert CrossEncoder.load(DEFAULT_CROSS_WEIGHTS) is CrossEncoder.load(DEFAULT_CROSS_WEIGHTS)
    weights = copy_verifier(tmp_path)
    cross = weights.parent / "cross_encoder.npz"
    assert Verifier.load(weights).cascade is not None
    blob = bytearray(cross.read_bytes())
    blob[len(blob) // 3] ^= 0xFF
    cross.write_bytes(bytes(blob))
    with pytest.raises(VerifierError, match="damaged"):
        Verifier.load(weights)
