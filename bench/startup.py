"""Time to the panel's first frame on the embedded default, against the time the model takes to load.

    .venv/bin/python bench/startup.py [--runs 3]

Each run is a fresh process (imports count): it builds the cache from default settings on a temporary
data folder, runs the app headless and records when the first frame was drawn, when the first poll
showed the store, and when the model finished loading. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from engine.config import Settings
from engine.assembly import build_cache
from semcache_tui.app import SemcacheApp
t_import = time.perf_counter() - t0
heavy_at_import = sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules)
settings = Settings.load(data_dir=sys.argv[1])
app = SemcacheApp(build_cache(settings), settings)
marks = {}

async def pilot(p):
    # The auto-pilot is called once the app is mounted, just before Textual's message loop starts drawing.
    marks["first_frame"] = time.perf_counter() - t0
    while not app.history.latest:
        await p.pause(0.005)
    marks["store_shown"] = time.perf_counter() - t0
    while not (app.started or app.start_error):
        await p.pause(0.01)
    marks["model_ready"] = time.perf_counter() - t0
    app.exit()

app.run(headless=True, size=(100, 32), auto_pilot=pilot)
marks["import"] = t_import
marks["heavy_at_import"] = heavy_at_import
print(json.dumps(marks))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="semcache-bench-") as data:
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, data], capture_output=True, text=True, env=env, check=True
            )
            marks = json.loads(out.stdout.strip().splitlines()[-1])
            marks["process"] = time.perf_counter() - started
            results.append(marks)
    print(f"panel start-up on the embedded default, {args.runs} fresh processes (seconds, median [min-max])")
    for key, label in (
        ("import", "import of the panel"),
        ("first_frame", "app mounted"),
        ("store_shown", "frame with the store's facts"),
        ("model_ready", "model loaded (start done)"),
    ):
        values = [r[key] for r in results]
        print(f"  {label:28} {statistics.median(values):7.3f}  [{min(values):.3f}-{max(values):.3f}]")
    print(f"  heavy modules at import:     {results[0]['heavy_at_import'] or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
