"""Certificates made in the test session (PyPI ``trustme``): a private CA, a server certificate for
127.0.0.1 and localhost, and a client certificate; written as PEM files, as an operator would have them.

``TlsServerProcess`` is ``ServerProcess`` over HTTPS: it waits for readiness trusting the private CA and
presenting the client certificate (so it works for a mutual-TLS server too).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import trustme

from tests.support.server_process import ServerProcess


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: A second CA, trusted by nobody: its certificates must be refused.
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path

    def client_context(self, *, with_cert: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_cert:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_tls_files(folder: Path) -> TlsFiles:
    folder.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("semcache-client@example.com")
    stranger = other.issue_cert("stranger@example.com")
    files = TlsFiles(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
        other_client_cert=folder / "stranger.pem",
        other_client_key=folder / "stranger.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.server_key))
    # The full chain, leaf first: what a client needs to build the path to the CA.
    files.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    client.private_key_pem.write_to_path(str(files.client_key))
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    other.cert_pem.write_to_path(str(files.other_ca))
    stranger.private_key_pem.write_to_path(str(files.other_client_key))
    files.other_client_cert.write_bytes(b"".join(blob.bytes() for blob in stranger.cert_chain_pems))
    return files


class TlsServerProcess(ServerProcess):
    """``python -m engine.server`` serving HTTPS with ``files`` (mutual TLS when ``mutual``)."""

    def __init__(
        self, workdir: Path, files: TlsFiles, env: dict[str, str] | None = None, *, mutual: bool = False
    ) -> None:
        tls_env = {
            "SEMCACHE_SSL_CERTFILE": str(files.server_cert),
            "SEMCACHE_SSL_KEYFILE": str(files.server_key),
        }
        if mutual:
            tls_env["SEMCACHE_SSL_CA_CERTS"] = str(files.ca)
        super().__init__(workdir, {**tls_env, **(env or {})})
        self.files = files
        self.url = f"https://127.0.0.1:{self.port}"
        self.plain_url = f"http://127.0.0.1:{self.port}"

    def _wait(self, path: str, timeout: float) -> None:
        context = self.files.client_context()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=5.0, verify=context).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}{path} not 200 after {timeout} s:\n{self.log()}")
