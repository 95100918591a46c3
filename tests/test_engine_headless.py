"""The engine never pulls in the UI: importing every engine module leaves textual and rich unloaded."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parents[1]


def test_every_engine_module_imports_without_textual_or_rich() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, prefix="engine."))
    assert "engine.cache" in modules and "engine.config" in modules and len(modules) >= 10
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
