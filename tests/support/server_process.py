"""A real ``python -m engine.server`` in a subprocess, on a free port, for tests and benchmarks.

Each one loads the bundled model (seconds), so tests share them through module-scoped fixtures.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
_CONFIG_PREFIXES = ("SEMCACHE_", "CACHE_", "EMBEDDING_", "OLLAMA_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # A crashed test run must not leave servers holding the model in memory.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    def __init__(
        self,
        workdir: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
        module: str = "engine.server",
    ) -> None:
        self.workdir = workdir
        self.module = module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"server-{self.port}.log"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_CONFIG_PREFIXES) and k not in ("REDIS_URL", "REDIS_PASSWORD")
        }
        base.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": str(ROOT),
                "SEMCACHE_DATA_DIR": str(workdir / "data"),
            }
        )
        if os.environ.get("SEMCACHE_MODEL_CACHE_DIR"):  # the test session's one ONNX export of the model
            base["SEMCACHE_MODEL_CACHE_DIR"] = os.environ["SEMCACHE_MODEL_CACHE_DIR"]
        base.update(env or {})
        self.env = base
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            self.module,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,  # no .env of the developer's is read
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self

    def wait_live(self, timeout: float = 60.0) -> None:
        self._wait("/health/live", timeout)

    def wait_ready(self, timeout: float = 180.0) -> None:
        self._wait("/health/ready", timeout)

    def _wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}{path} not 200 after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def batch_lasting(server: ServerProcess, seconds: float, headers: dict[str, str]) -> list[dict[str, str]]:
    """Items for a ``/cache/store/batch`` that takes about ``seconds`` on this machine now: sized by timing
    a small batch first, so a test that needs a request in flight does not depend on an idle machine."""
    probe = [{"prompt": f"Probe question {i} on subject {i * 3}?", "response": "Probe."} for i in range(100)]
    started = time.perf_counter()
    answer = httpx.post(
        server.url + "/cache/store/batch", json={"items": probe}, headers=headers, timeout=120
    )
    answer.raise_for_status()
    per_item = (time.perf_counter() - started) / len(probe)
    n = min(40_000, max(500, math.ceil(seconds / per_item)))
    return [
        {"prompt": f"Question number {i} about topic {i * 7}?", "response": f"Answer {i}."} for i in range(n)
    ]
