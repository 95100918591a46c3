"""HTTPS for the API and mutual TLS, with certificates made in the session (trustme): real server
processes, the real client, the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.client import RemoteCache
from engine.config import Settings
from engine.errors import BackendUnavailableError, ConfigError
from semcache_tui.app import SemcacheApp
from semcache_tui.monitor import FrozenProbe
from tests.support.tls import TlsFiles, TlsServerProcess, make_tls_files

pytestmark = pytest.mark.slow

SEMCACHE_TUI = str(Path(sys.executable).with_name("semcache-tui"))
#: How long a busy machine may take to load the model in a fresh server process.
READY_TIMEOUT_S = float(os.environ.get("SEMCACHE_TEST_READY_TIMEOUT", "240"))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[TlsServerProcess]:
    process = TlsServerProcess(tmp_path_factory.mktemp("https"), tls_files).start()
    try:
        process.wait_ready(READY_TIMEOUT_S)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[TlsServerProcess]:
    process = TlsServerProcess(tmp_path_factory.mktemp("mtls"), tls_files, mutual=True).start()
    try:
        process.wait_live(READY_TIMEOUT_S)
        yield process
    finally:
        process.stop()


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEMCACHE_", "CACHE_", "EMBEDDING_", "OLLAMA_")) and k != "REDIS_URL"
    }


async def test_remote_cache_stores_and_hits_over_https_with_a_private_ca(
    https_server: TlsServerProcess, tls_files: TlsFiles
) -> None:
    remote = RemoteCache(https_server.url, ca_file=tls_files.ca)
    try:
        await remote.start()
        await remote.store("What is the capital of Italy?", "Rome.")
        result = await remote.check("What is the capital of Italy?")
        assert result.is_hit and result.matches[0].entry.response == "Rome."
    finally:
        await remote.close()
    assert "https://127.0.0.1" in https_server.log()


async def test_an_untrusted_certificate_is_one_clear_error_never_a_silent_fallback(
    https_server: TlsServerProcess, tls_files: TlsFiles
) -> None:
    for ca_file in (None, tls_files.other_ca):
        remote = RemoteCache(https_server.url, ca_file=ca_file)
        try:
            with pytest.raises(BackendUnavailableError) as raised:
                await remote.stats()
        finally:
            await remote.close()
        message = str(raised.value)
        assert "does not trust" in message and https_server.url in message, message
        assert "--ca-file" in (raised.value.hint or ""), raised.value.hint
        assert "\n" not in message


async def test_plain_http_to_the_tls_port_fails_cleanly_and_the_server_carries_on(
    https_server: TlsServerProcess, tls_files: TlsFiles
) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(https_server.plain_url + "/health/live", timeout=30)
    remote = RemoteCache(https_server.plain_url)
    try:
        with pytest.raises(BackendUnavailableError) as raised:
            await remote.stats()
    finally:
        await remote.close()
    assert https_server.plain_url in str(raised.value)
    answer = httpx.get(https_server.url + "/health/live", verify=tls_files.client_context(), timeout=30)
    assert answer.status_code == 200
    assert "Traceback" not in https_server.log()


def test_mutual_tls_refuses_a_client_without_a_certificate_or_with_a_strangers(
    mtls_server: TlsServerProcess, tls_files: TlsFiles
) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(
            mtls_server.url + "/health/live", verify=tls_files.client_context(with_cert=False), timeout=30
        )
    import ssl

    stranger = ssl.create_default_context(cafile=str(tls_files.ca))
    stranger.load_cert_chain(str(tls_files.other_client_cert), str(tls_files.other_client_key))
    with pytest.raises(httpx.TransportError):
        httpx.get(mtls_server.url + "/health/live", verify=stranger, timeout=30)
    answer = httpx.get(mtls_server.url + "/health/live", verify=tls_files.client_context(), timeout=30)
    assert answer.status_code == 200
    assert "client certificates required" in mtls_server.log()


async def test_remote_cache_without_a_client_certificate_says_the_server_requires_one(
    mtls_server: TlsServerProcess, tls_files: TlsFiles
) -> None:
    remote = RemoteCache(mtls_server.url, ca_file=tls_files.ca)
    try:
        with pytest.raises(BackendUnavailableError) as raised:
            await remote.stats()
    finally:
        await remote.close()
    assert "certificate" in str(raised.value), raised.value
    remote = RemoteCache(
        mtls_server.url, ca_file=tls_files.ca, client_cert=(tls_files.client_cert, tls_files.client_key)
    )
    try:
        report = await remote.health()
    finally:
        await remote.close()
    assert report.component("server") is not None and report.component("server").status == "ok"  # type: ignore[union-attr]


async def test_the_panel_attaches_to_an_https_server_with_the_ca_file(
    https_server: TlsServerProcess, tls_files: TlsFiles, tmp_path: Path
) -> None:
    from tests.tui.conftest import SIZE, settle

    remote = RemoteCache(https_server.url, ca_file=tls_files.ca)
    settings = Settings(data_dir=tmp_path / "unused", index_name="panel")
    app = SemcacheApp(remote, settings, probe=FrozenProbe(), refresh_interval=60.0, close_service=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, polls=2)
            assert app.started and app.start_error is None
            assert app.target_label == f"remote:{https_server.url}"
    finally:
        await remote.close()


def test_the_command_line_attaches_with_ca_file_and_refuses_without(
    https_server: TlsServerProcess, tls_files: TlsFiles, tmp_path: Path
) -> None:
    base = [SEMCACHE_TUI, "--server", https_server.url]
    run = {"cwd": tmp_path, "env": _clean_env(), "capture_output": True, "text": True, "timeout": 120}
    trusted = subprocess.run([*base, "--ca-file", str(tls_files.ca), "stats"], **run)  # type: ignore[call-overload]
    assert trusted.returncode == 0, trusted.stderr
    untrusted = subprocess.run([*base, "stats"], **run)  # type: ignore[call-overload]
    assert untrusted.returncode != 0
    lines = untrusted.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not trust" in lines[0], untrusted.stderr
    assert "Traceback" not in untrusted.stderr


@pytest.mark.parametrize(
    ("problem", "variable"),
    [("mismatched key", "SEMCACHE_SSL_KEYFILE"), ("unreadable certificate", "SEMCACHE_SSL_CERTFILE")],
)
def test_the_server_refuses_unusable_tls_files_at_start_with_one_line(
    tls_files: TlsFiles, tmp_path: Path, problem: str, variable: str
) -> None:
    if problem == "mismatched key":
        cert, key = tls_files.server_cert, tls_files.client_key
    else:
        cert, key = tmp_path / "missing.pem", tls_files.server_key
    env = {**_clean_env(), "SEMCACHE_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [SEMCACHE_TUI, "--serve", "--port", "0", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"semcache-tui: {variable}="), done.stderr


def test_a_ca_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        RemoteCache("https://127.0.0.1:1", ca_file=tmp_path / "nope.pem")
    assert "SEMCACHE_CA_FILE" in str(raised.value)
