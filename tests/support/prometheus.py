"""A real Prometheus for tests, from Debian's ``prometheus`` package, fetched without installing it.

As ``redis_server.py`` does for libssl1.1: ``apt-get download`` with a private sources list and lists
folder (the machine's apt state is untouched), ``dpkg -x`` into a cache folder, run the binaries from
there. Debian's Prometheus is a static Go binary; ``promtool`` comes in the same package. Later runs find
the cache and start at once.

``ensure_prometheus()`` returns the paths or raises ``PrometheusUnavailable`` with one line saying what
was tried; ``Prometheus(paths, config).start()`` runs one server on a free port in its own folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.redis_server import (
    MIRROR_ENV,
    AptFailed,
    _apt_sources,
    _die_with_parent,
    _last_line,
    _locked,
    apt_unpack,
    cache_dir,
    free_port,
)

#: A folder holding ``prometheus`` and ``promtool`` to use instead of the Debian package.
PROMETHEUS_DIR_ENV = "SEMCACHE_TEST_PROMETHEUS_DIR"
_PACKAGE = "prometheus"


class PrometheusUnavailable(RuntimeError):
    """Prometheus cannot be run here; the message is one line that says what was tried."""


@dataclass(frozen=True, slots=True)
class PrometheusPaths:
    prometheus: Path
    promtool: Path


def _runs(binary: Path) -> bool:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _found(folder: Path) -> PrometheusPaths | None:
    for bin_dir in (folder, folder / "usr" / "bin"):
        prometheus, promtool = bin_dir / "prometheus", bin_dir / "promtool"
        if prometheus.exists() and promtool.exists() and _runs(prometheus) and _runs(promtool):
            return PrometheusPaths(prometheus, promtool)
    return None


def _debian_sources() -> list[str]:
    """The machine's own Debian suites (never third-party entries, whose update may fail)."""
    mirror = os.environ.get(MIRROR_ENV)
    candidates = [(mirror, ["bookworm", "bookworm-updates"], None)] if mirror else _apt_sources()
    lines = []
    for uri, suites, signed_by in candidates:
        if not uri.rstrip("/").endswith(("/debian", "/debian-security")):
            continue
        options = f"[signed-by={signed_by}] " if signed_by else ""
        for suite in suites:
            line = f"deb {options}{uri} {suite} main"
            if line not in lines:
                lines.append(line)
    return lines


def _download(target: Path) -> None:
    tried = f"apt-get download {_PACKAGE} (Debian's package, unpacked into {target})"
    sources = _debian_sources()
    if not sources:
        raise PrometheusUnavailable(
            f"tried {tried}: no Debian mirror in /etc/apt; set {MIRROR_ENV} or {PROMETHEUS_DIR_ENV}"
        )
    try:
        apt_unpack(_PACKAGE, sources, target, timeout=600)
    except AptFailed as exc:
        raise PrometheusUnavailable(
            f"tried {tried}: {exc}; set {PROMETHEUS_DIR_ENV} to a folder with prometheus and promtool"
        ) from None


def ensure_prometheus() -> PrometheusPaths:
    configured = os.environ.get(PROMETHEUS_DIR_ENV)
    if configured:
        found = _found(Path(configured))
        if found is None:
            raise PrometheusUnavailable(f"{PROMETHEUS_DIR_ENV}={configured} holds no runnable prometheus")
        return found
    on_path = shutil.which("prometheus"), shutil.which("promtool")
    if on_path[0] and on_path[1]:
        return PrometheusPaths(Path(on_path[0]), Path(on_path[1]))
    folder = cache_dir() / _PACKAGE
    with _locked(cache_dir() / ".lock"):
        found = _found(folder)
        if found is None:
            _download(folder)
            found = _found(folder)
    if found is None:
        raise PrometheusUnavailable(f"Debian's {_PACKAGE} package unpacked in {folder} does not run")
    return found


class Prometheus:
    """One Prometheus on 127.0.0.1 with ``config`` (YAML text; rule files beside it by absolute path)."""

    def __init__(self, paths: PrometheusPaths, config: str, workdir: Path) -> None:
        self.paths = paths
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(config)
        self.log_path = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Prometheus:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(self.paths.prometheus),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusUnavailable(f"prometheus exited: {_last_line(self.log())}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/-/ready", timeout=2) as answer,
            ):
                if answer.status == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise PrometheusUnavailable(f"prometheus not ready in {timeout:.0f}s: {_last_line(self.log())}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expression)
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
