"""A faithful protocol peer of Ollama, for tests: NOT Ollama, a stand-in for a server we cannot run here.

A small real HTTP/1.1 server on 127.0.0.1 (a free port), in a background thread, speaking the part of
Ollama's documented API that semcache uses, with Ollama's own shapes and status codes:

- ``POST /api/embed``: request ``{model, input: str | [str], truncate?, dimensions?, keep_alive?,
  options?}``; answer ``{model, embeddings: [[...]], total_duration, load_duration, prompt_eval_count}``
  with unit vectors; ``dimensions`` smaller than the model's is honoured by truncation and
  renormalization, a larger one is ignored (as Ollama does);
- ``GET /api/tags``: ``{models: [{name, model, modified_at, size, digest, details: {...}}]}``;
- ``GET /api/version``: ``{version}``;
- ``POST /api/show``: ``{modelfile, parameters, template, details, model_info, capabilities}``;
- errors as Ollama writes them: ``{"error": "..."}`` with 404 ``model "x" not found, try pulling it first``
  for a model that is not pulled, 501 ``this model does not support embeddings`` for a chat model, 400 for
  a malformed request, 404 ``404 page not found`` (plain text) for an unknown route.

The embeddings are real: the bundled sentence-transformers model computes them (``embed_fn``), so
semantic behaviour through the peer matches the local embedder. Known models:

- ``all-minilm`` (384 dimensions, the bundled model),
- ``all-minilm-256`` (the same model truncated to 256 dimensions and renormalized; a second identity, so a
  model change can be tested),
- ``llama3.2`` (a chat model: listed by ``/api/tags``, refuses to embed).

Switches for failure modes: ``down()``/``up()`` (the port closed and open connections reset, then the
same port served again), ``delay`` (seconds slept before answering), ``fail_status``/``fail_times`` (answer
``/api/embed`` with that status, for the next N requests or forever), ``remove_model``/``add_model``.
``requests`` records every request (method, path, JSON body) and ``embed_calls`` counts ``/api/embed``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from tests.support.peer_http import PeerServer

VERSION = "0.12.6"
EMBED_FAILURE = "embed"


@dataclass(frozen=True, slots=True)
class PeerModel:
    name: str  # the name as pulled, with its tag
    dimension: int | None  # None: a chat model that cannot embed
    family: str = "bert"
    parameter_size: str = "22.6M"
    quantization_level: str = "F16"
    size: int = 45960996
    digest: str = "1b226e2802dbb772b5fc32a58f103ca1804ef7501331012de126ab22f67475ef"

    def tag_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": "2025-09-04T10:15:42.123456789+02:00",
            "size": self.size,
            "digest": self.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": self.family,
                "families": [self.family],
                "parameter_size": self.parameter_size,
                "quantization_level": self.quantization_level,
            },
        }


DEFAULT_MODELS = (
    PeerModel("all-minilm:latest", 384),
    PeerModel(
        "all-minilm-256:latest",
        256,
        digest="5e4c1d52e3a0b0b6b4a0b0e9c8a6c4c1bd7f1d1bdb6b0f9f16b1fd0d5b0c6a1e",
    ),
    PeerModel(
        "llama3.2:latest",
        None,
        family="llama",
        parameter_size="3.2B",
        quantization_level="Q4_K_M",
        size=2019393189,
        digest="a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
    ),
)


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


class OllamaPeer:
    """See the module docstring. Start with ``start()``; ``base_url`` is then ``http://127.0.0.1:PORT``."""

    def __init__(self, embed_fn: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self._embed_fn = embed_fn
        self._embed_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._server: PeerServer[Any] | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.port: int | None = None
        self.requests: list[RecordedRequest] = []
        self.reset()

    # -- life cycle --------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Ollama peer is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> OllamaPeer:
        if self._server is not None:
            return self
        server = PeerServer(
            ("127.0.0.1", self.port or 0), _Handler, self, self._state_lock, self._connections
        )
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"ollama-peer:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._state_lock:
            connections = set(self._connections)
            self._connections.clear()  # the same set the server tracks into
        for conn in connections:  # a dead server resets the connections a client keeps alive
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def down(self) -> None:
        """The server goes away: its port refuses connections until ``up()``."""
        self.stop()

    def up(self) -> None:
        self.start()

    def reset(self) -> None:
        """Back to a healthy server with the default models, no delay and no recorded requests."""
        with self._state_lock:
            self.models: dict[str, PeerModel] = {m.name: m for m in DEFAULT_MODELS}
            self.delay = 0.0
            self.fail_status: int | None = None
            self.fail_times: int | None = None
            self.fail_body = "internal server error"
            self.requests = []
            self.generation = getattr(self, "generation", 0) + 1
        if self.port is not None and self._server is None:
            self.start()

    # -- switches ----------------------------------------------------------------------------------------

    def fail(self, status: int = 500, times: int | None = None, body: str = "internal server error") -> None:
        """Answer ``/api/embed`` with ``status`` (``{"error": body}``), ``times`` times or until ``reset``."""
        with self._state_lock:
            self.fail_status, self.fail_times, self.fail_body = status, times, body

    def remove_model(self, name: str) -> None:
        with self._state_lock:
            self.models.pop(_tagged(name), None)

    def add_model(self, model: PeerModel) -> None:
        with self._state_lock:
            self.models[model.name] = model

    # -- what happened -----------------------------------------------------------------------------------

    def clear_requests(self) -> None:
        with self._state_lock:
            self.requests = []

    def calls(self, path: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.path == path]

    @property
    def embed_calls(self) -> int:
        return len(self.calls("/api/embed"))

    # -- the API -----------------------------------------------------------------------------------------

    def _embed_vectors(self, texts: list[str]) -> np.ndarray:
        if self._embed_fn is None:
            from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder()
            embedder.load_sync()
            self._embed_fn = embedder.embed_sync
        with self._embed_lock:
            return np.asarray(self._embed_fn(texts), dtype=np.float32)

    def handle(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """The answer (status, JSON body or plain text) to one request; runs on a server thread."""
        with self._state_lock:
            self.requests.append(RecordedRequest(method, path, body, dict(headers or {})))
            delay, generation = self.delay, self.generation
        if delay:
            time.sleep(delay)
            if generation != self.generation:  # the test that asked for the delay is over
                return 503, {"error": "server shutting down"}
        route = (method, path)
        if route == ("GET", "/api/version"):
            return 200, {"version": VERSION}
        if route == ("GET", "/api/tags"):
            with self._state_lock:
                models = list(self.models.values())
            return 200, {"models": [m.tag_entry() for m in models]}
        if route == ("POST", "/api/embed"):
            return self._embed(body)
        if route == ("POST", "/api/show"):
            return self._show(body)
        if path in ("/api/version", "/api/tags", "/api/embed", "/api/show"):
            return 405, "405 method not allowed"
        return 404, "404 page not found"

    def _embed(self, body: Any) -> tuple[int, Any]:
        started = time.perf_counter_ns()
        if not isinstance(body, dict):
            return 400, {"error": "missing request body"}
        name = str(body.get("model") or "")
        raw = body.get("input")
        if isinstance(raw, str):
            texts = [raw] if raw else []
        elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
            texts = list(raw)
        elif raw is None:
            texts = []
        else:
            return 400, {"error": "invalid input type"}
        dimensions = body.get("dimensions")
        if dimensions is not None and not isinstance(dimensions, int):
            return 400, {
                "error": "json: cannot unmarshal string into Go struct field EmbedRequest.dimensions"
            }
        with self._state_lock:
            if self.fail_status is not None and self.fail_times != 0:
                if self.fail_times is not None:
                    self.fail_times -= 1
                return self.fail_status, {"error": self.fail_body}
            model = self.models.get(_tagged(name)) if name else None
        if not name:
            return 400, {"error": "model is required"}
        if model is None:
            return 404, {"error": f'model "{name}" not found, try pulling it first'}
        if model.dimension is None:
            return 501, {"error": "this model does not support embeddings"}
        loaded = time.perf_counter_ns()
        if not texts:
            return 200, {"model": name, "embeddings": []}
        vectors = self._embed_vectors(texts)[:, : model.dimension]
        vectors = _normalize(vectors)
        if isinstance(dimensions, int) and 0 < dimensions < vectors.shape[1]:
            vectors = _normalize(vectors[:, :dimensions])
        return 200, {
            "model": name,
            "embeddings": vectors.astype(float).tolist(),
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": loaded - started,
            "prompt_eval_count": sum(len(t.split()) + 2 for t in texts),
        }

    def _show(self, body: Any) -> tuple[int, Any]:
        name = str((body or {}).get("model") or (body or {}).get("name") or "")
        with self._state_lock:
            model = self.models.get(_tagged(name)) if name else None
        if not name:
            return 400, {"error": "model is required"}
        if model is None:
            return 404, {"error": f"model '{name}' not found"}
        entry = model.tag_entry()
        info: dict[str, Any] = {"general.architecture": model.family}
        capabilities = ["completion"]
        if model.dimension is not None:
            info[f"{model.family}.embedding_length"] = model.dimension
            capabilities = ["embedding"]
        return 200, {
            "modelfile": f"FROM {model.name}\n",
            "parameters": "",
            "template": "",
            "details": entry["details"],
            "model_info": info,
            "capabilities": capabilities,
            "modified_at": entry["modified_at"],
        }


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Ollama's Go server
    server: PeerServer[OllamaPeer]

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._answer("GET", None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"invalid character in request body: {exc.msg}"})
            return
        self._answer("POST", body)

    def _answer(self, method: str, body: Any) -> None:
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, payload = self.server.peer.handle(method, path, body, headers)
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        if isinstance(payload, str):
            data, kind = payload.encode(), "text/plain"
        else:
            data, kind = json.dumps(payload).encode(), "application/json; charset=utf-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test) or the peer was taken down


def texts_of(request: RecordedRequest) -> Sequence[str]:
    """The input texts of a recorded ``/api/embed`` request, as a list."""
    raw = (request.body or {}).get("input")
    return [raw] if isinstance(raw, str) else list(raw or [])
