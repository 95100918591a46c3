"""``semcache-tui eval``: the verifier's figures on a small labeled file, overall and by category, and a
bad file as one line and exit 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.support.cli import run_cli

PAIRS = [
    {
        "text_a": "Who wrote Hamlet?",
        "text_b": "Who was the author of Hamlet?",
        "label": 1,
        "category": "paraphrase",
    },
    {
        "text_a": "How do I reverse a list in Python?",
        "text_b": "What's the way to reverse a Python list?",
        "label": 1,
        "category": "paraphrase",
    },
    {
        "text_a": "How do I convert 5 km to miles?",
        "text_b": "How do I convert 50 km to miles?",
        "label": 0,
        "category": "number",
    },
    {
        "text_a": "How do I sort a list in Python?",
        "text_b": "How do I sort a list in Java?",
        "label": 0,
        "category": "platform",
    },
    {"text_a": "What is machine learning?", "text_b": "What is the boiling point of water?", "label": 0},
]


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_eval_reports_figures_by_category(tmp_path: Path) -> None:
    pairs = write(tmp_path / "pairs.jsonl.gz", PAIRS)
    done = run_cli(tmp_path / "data", "eval", str(pairs), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pairs"] == 5 and report["positives"] == 2
    assert report["target_precision"] == 0.88
    categories = {c["category"]: c for c in report["verifier"]["categories"]}
    assert set(categories) == {"paraphrase", "number", "platform", "uncategorized"}
    assert categories["number"]["wrong_served_rate"] == 0.0
    assert categories["platform"]["wrong_served_rate"] == 0.0
    assert categories["paraphrase"]["served_rate"] == 1.0
    assert report["verifier"]["precision"] == 1.0 and report["verifier"]["wrong_rate"] == 0.0
    assert report["curve"] and all(
        {"cut", "precision", "served", "meets_target"} <= set(p) for p in report["curve"]
    )

    strict = json.loads(run_cli(tmp_path / "data", "eval", str(pairs), "--json", "--target", "0.97").stdout)
    assert strict["cut"] >= report["cut"]

    human = run_cli(tmp_path / "data", "eval", str(pairs), "--limit", "4")
    assert human.returncode == 0, human.stderr
    assert "4 pairs" in human.stdout and "precision" in human.stdout and "<- target" in human.stdout


def test_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text_a": "a", "text_b": "b", "label": 1}\nnot json\n')
    done = run_cli(tmp_path / "data", "eval", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "line 2" in done.stderr
    missing = run_cli(tmp_path / "data", "eval", str(tmp_path / "nowhere.jsonl"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
