"""A faithful protocol peer of OpenAI's API, for tests: NOT OpenAI, a stand-in for an upstream we cannot
reach here.

A small real HTTP/1.1 server on 127.0.0.1 (a free port), in a background thread, speaking the part of
OpenAI's documented REST API that an OpenAI-compatible upstream serves, with OpenAI's shapes:

- ``POST /v1/chat/completions``: ``{model, messages, stream?, stream_options?, n?, tools?, ...}``; answers
  a ``chat.completion`` (``id``, ``object``, ``created``, ``model``, ``choices[{index, message{role,
  content, refusal}, logprobs, finish_reason}]``, ``usage{prompt_tokens, completion_tokens,
  total_tokens}``, ``system_fingerprint``), or with ``stream: true`` ``chat.completion.chunk`` events over
  SSE (a role chunk, one chunk per word, a chunk with ``finish_reason``, a usage chunk with ``choices: []``
  when ``stream_options.include_usage``, then ``data: [DONE]``), in chunked transfer encoding. ``n`` choices
  are answered. With ``tools`` and ``tool_choice: "required"`` the answer is a tool call.
- ``POST /v1/completions``: ``text_completion`` answers, streamed the same way.
- ``GET /v1/models``, ``GET /v1/models/{id}``: ``{object: "list", data: [{id, object, created, owned_by}]}``.
- errors as OpenAI writes them: ``{"error": {message, type, param, code}}``; 401 without
  ``Authorization: Bearer``, 404 ``model_not_found``, 400 for a malformed request, 404 for an unknown route.

Answers are deterministic but tell calls apart: ``"Reply {call} from {model}[ (system: ...)]: {prompt}"``,
where ``call`` counts the completion calls, so a test can tell a served answer from a fresh one.
Switches: ``fail(status, times)`` (OpenAI's error body), ``finish_reason`` (e.g. ``"length"``), ``hold()``
(a stream stops after its first content chunk until ``release()``), ``delay``, ``stop()``/``start()``.
``requests`` records every request (method, path, JSON body, headers); ``completion_calls`` counts the
completion requests answered.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.peer_http import PeerServer

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct")
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class OpenAIPeer:
    """See the module docstring. ``start()``; ``base_url`` is then ``http://127.0.0.1:PORT/v1``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: PeerServer[Any] | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.port: int | None = None
        self.reset()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the OpenAI peer is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIPeer:
        if self._server is None:
            server = PeerServer(("127.0.0.1", self.port or 0), _Handler, self, self._lock, self._connections)
            self.port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name="openai-peer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self.release()
            server.shutdown()
            server.server_close()
            with self._lock:
                connections = set(self._connections)
                self._connections.clear()  # the same set the server tracks into
            for connection in connections:  # a server gone resets the connections its clients keep alive
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.requests: list[RecordedRequest] = []
            self.calls = 0
            self.fail_status: int | None = None
            self.fail_times: int | None = None
            self.finish_reason = "stop"
            self.delay = 0.0
            self._held = threading.Event()
            self._held.set()
            #: Set when a held stream has sent its first content chunk; cleared by ``hold``.
            self.stream_started = threading.Event()
            #: Set when a held stream has ended (released and written, or its client gone).
            self.stream_ended = threading.Event()

    # -- switches ----------------------------------------------------------------------------------------

    def fail(self, status: int = 500, times: int | None = None) -> None:
        with self._lock:
            self.fail_status, self.fail_times = status, times

    def hold(self) -> None:
        """The next streams pause after their first content chunk until ``release()``."""
        self._held.clear()
        self.stream_started.clear()
        self.stream_ended.clear()

    def release(self) -> None:
        self._held.set()

    # -- what happened -----------------------------------------------------------------------------------

    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.path in COMPLETION_PATHS]

    @property
    def completion_calls(self) -> int:
        return len(self.completion_requests())

    # -- the API -----------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        """``(status, JSON body)``, or ``(200, [events])`` for a stream; runs on a server thread."""
        with self._lock:
            self.requests.append(RecordedRequest(method, path, body, headers))
            delay = self.delay
        if delay:
            time.sleep(delay)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return 401, _error(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            )
        if method == "GET" and path == "/v1/models":
            return 200, {"object": "list", "data": [self._model(m) for m in MODELS]}
        if method == "GET" and path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            if name not in MODELS:
                return 404, _error(
                    f"The model '{name}' does not exist", "invalid_request_error", "model_not_found", "model"
                )
            return 200, self._model(name)
        if method == "POST" and path in COMPLETION_PATHS:
            return self._complete(path, body)
        return 404, _error(f"Invalid URL ({method} {path})", "invalid_request_error")

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}

    def _complete(self, path: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            failing = self.fail_status
            if failing is not None and self.fail_times is not None:
                self.fail_times -= 1
                if self.fail_times <= 0:
                    self.fail_status = self.fail_times = None
            self.calls += 1
            call, finish_reason = self.calls, self.finish_reason
        if failing is not None:
            kind = "rate_limit_exceeded" if failing == 429 else "server_error"
            return failing, _error("The upstream peer was told to fail this request.", kind)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return 400, _error("you must provide a model parameter", "invalid_request_error", None, "model")
        model = body["model"]
        if model not in MODELS:
            return 404, _error(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        chat = path == "/v1/chat/completions"
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return 400, _error(
                    "'messages' is a required property", "invalid_request_error", None, "messages"
                )
            prompt = _text(messages[-1].get("content"))
            system = " ".join(
                _text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
            )
        else:
            prompt, system = str(body.get("prompt")), ""
        text = f"Reply {call} from {model}" + (f" (system: {system})" if system else "") + f": {prompt}"
        tool_call = chat and bool(body.get("tools")) and body.get("tool_choice") == "required"
        n = int(body.get("n") or 1)
        usage = {"prompt_tokens": len(prompt.split()) + 7, "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        answer_id = f"{'chatcmpl' if chat else 'cmpl'}-peer{call}"
        created = int(time.time())
        if tool_call:
            finish_reason = "tool_calls"
        calls = (
            [
                {
                    "id": f"call_peer{call}",
                    "type": "function",
                    "function": {
                        "name": body["tools"][0]["function"]["name"],
                        "arguments": json.dumps({"q": prompt}),
                    },
                }
            ]
            if tool_call
            else []
        )
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return 200, self._events(
                chat,
                answer_id,
                created,
                model,
                text,
                n,
                finish_reason,
                tool_call,
                calls,
                usage if options.get("include_usage") else None,
            )
        choices: list[dict[str, Any]] = []
        for index in range(n):
            if chat:
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": None if tool_call else text,
                    "refusal": None,
                }
                if tool_call:
                    message["tool_calls"] = calls
                choices.append(
                    {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}
                )
            else:
                choices.append(
                    {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
                )
        return 200, {
            "id": answer_id,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": "fp_peer",
        }

    def _events(
        self,
        chat: bool,
        answer_id: str,
        created: int,
        model: str,
        text: str,
        n: int,
        finish_reason: str,
        tool_call: bool,
        calls: list[dict[str, Any]],
        usage: dict[str, int] | None,
    ) -> list[Any]:
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            body = {
                "id": answer_id,
                "object": obj,
                "created": created,
                "model": model,
                "system_fingerprint": "fp_peer",
                "choices": choices,
            }
            body.update(extra)
            return body

        def choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            if chat:
                return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {
                "text": delta.get("content", ""),
                "index": index,
                "logprobs": None,
                "finish_reason": finish,
            }

        events: list[Any] = []
        if chat:
            events += [
                chunk([choice(i, {"role": "assistant", "content": "", "refusal": None})]) for i in range(n)
            ]
        if tool_call:
            call = calls[0]
            events.append(
                chunk(
                    [
                        choice(
                            0,
                            {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": call["id"],
                                        "type": "function",
                                        "function": {"name": call["function"]["name"], "arguments": ""},
                                    }
                                ]
                            },
                        )
                    ]
                )
            )
            events.append(HOLD)
            args = call["function"]["arguments"]
            for start in range(0, len(args), 5):
                events.append(
                    chunk(
                        [
                            choice(
                                0,
                                {
                                    "tool_calls": [
                                        {"index": 0, "function": {"arguments": args[start : start + 5]}}
                                    ]
                                },
                            )
                        ]
                    )
                )
        else:
            words = text.split(" ")
            for position, word in enumerate(words):
                piece = word if position == 0 else " " + word
                events += [chunk([choice(i, {"content": piece})]) for i in range(n)]
                if position == 0:
                    events.append(HOLD)
        events += [chunk([choice(i, {}, finish_reason)]) for i in range(n)]
        if usage is not None:
            events.append(chunk([], usage=usage))
        events.append(DONE)
        return events


HOLD = object()  # where a held stream pauses
DONE = object()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them
    server: PeerServer[OpenAIPeer]

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._answer("GET", None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self._send(
                400, _error("We could not parse the JSON body of your request.", "invalid_request_error")
            )
            return
        self._answer("POST", body)

    def do_DELETE(self) -> None:
        self._answer("DELETE", None)

    def _answer(self, method: str, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, payload = self.server.peer.handle(method, self.path.split("?", 1)[0], body, headers)
        if isinstance(payload, list):
            self._stream(payload)
        else:
            self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", "req_peer")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def _stream(self, events: list[Any]) -> None:
        peer = self.server.peer
        held = peer._held
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-request-id", "req_peer")
            self.end_headers()
            for event in events:
                if event is HOLD:
                    if not held.is_set():
                        peer.stream_started.set()
                        held.wait(60)
                    continue
                data = (
                    b"data: [DONE]\n\n" if event is DONE else b"data: " + json.dumps(event).encode() + b"\n\n"
                )
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        finally:
            with contextlib.suppress(Exception):
                peer.stream_ended.set()
