"""A fake Ollama server for tests: the real HTTP wire protocol, no model behind it.

The Ollama server binary cannot be installed where these tests run, so this is the only Ollama
the tests ever talk to. It follows Ollama's `docs/api.md`: `GET /api/tags`, `GET /api/version`,
`POST /api/show`, and `POST /api/chat` / `POST /api/generate` answering NDJSON over chunked
transfer encoding when `stream` is true (the default) and one JSON object when it is false.
Errors are `{"error": "..."}` bodies with the real status codes and message formats.

    with FakeOllama(models=["qwen2.5:3b"], reply_tokens=["你", "好"]) as server:
        settings = Settings(_env_file=None, ollama_host=server.url)
        ...
        server.chat_requests[0]["options"]["temperature"]

Structured output: a request's `format` (a JSON schema, as Ollama takes it) is recorded with the
request; the fake has no model to constrain, so it checks the scripted reply against the schema
instead and lists every reply that breaks it in `.format_violations` (a test scripting an
evidence-first reply asserts there are none). `evidence_reply` scripts such a reply by naming
the numbered sentences of the prompt it cites by a piece of their text.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

FailMode = Literal["error500", "drop_mid_stream", "reset_mid_stream", "slow"]
Responder = Callable[[dict[str, Any]], Sequence[str]]

# What a real server says when its runner dies; any 500 text would do, this one is realistic.
ERROR_500_TEXT = "llama runner process has terminated: signal: killed"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] | None  # the parsed JSON body; None for GET or an empty body


def _with_tag(name: str) -> str:
    """Ollama's default tag: a name without one means `:latest`."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeOllama:
    """A `ThreadingHTTPServer` on 127.0.0.1 (a free port) in a background thread.

    - `models`: what `/api/tags` lists and what chat accepts (others get Ollama's 404);
    - `reply_tokens`, or `responder(request_json) -> tokens`: the streamed answer, in order;
    - `fail_mode`: None; "error500" (every API call answers 500); "drop_mid_stream" (send
      `drop_after` tokens, then close the socket without the final chunk or the done line);
      "reset_mid_stream" (the same, but with a TCP reset instead of an orderly close);
      "slow" (wait `slow_s` seconds before the response headers and the first token);
    - `token_delay_s`: a pause before each streamed token, as a model on a slow machine takes
      (an answer then streams for a known while: long enough to act on the page meanwhile);
    - `.requests`: every request received, in order, with its parsed JSON body.
    """

    def __init__(
        self,
        models: Iterable[str] = ("qwen2.5:3b",),
        reply_tokens: Sequence[str] = ("你好", ",", "世界", "。"),
        responder: Responder | None = None,
        fail_mode: FailMode | None = None,
        *,
        drop_after: int = 2,
        slow_s: float = 2.0,
        token_delay_s: float = 0.0,
        version: str = "0.12.6",
    ) -> None:
        self.models = list(models)
        self.reply_tokens = list(reply_tokens)
        self.responder = responder
        self.fail_mode = fail_mode
        self.drop_after = drop_after
        self.slow_s = slow_s
        self.token_delay_s = token_delay_s
        self.version = version
        self.requests: list[RecordedRequest] = []
        self.format_violations: list[str] = []
        self._lock = threading.Lock()
        # Set on stop so a "slow" handler wakes up instead of outliving the test.
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._url = ""  # kept after stop, so tests can still name the server in assertions
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> FakeOllama:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        host, port = server.server_address[:2]
        self._url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._url, "start the server first"
        return self._url

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every `POST /api/chat`, in order."""
        with self._lock:
            return [r.body or {} for r in self.requests if r.path == "/api/chat"]

    # --- behaviour shared by the handler threads ---

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _has_model(self, name: str) -> bool:
        return _with_tag(name) in {_with_tag(m) for m in self.models}

    def _tokens_for(self, body: dict[str, Any]) -> list[str]:
        if self.responder is not None:
            tokens = list(self.responder(body))
        else:
            tokens = list(self.reply_tokens)
        schema = body.get("format")
        if isinstance(schema, dict):
            problem = schema_problem("".join(tokens), schema)
            if problem:
                with self._lock:
                    self.format_violations.append(problem)
        return tokens

    def _tags(self) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": _with_tag(m),
                    "model": _with_tag(m),
                    "modified_at": "2025-05-01T10:00:00.000000000+08:00",
                    "size": 1_929_912_432,
                    "digest": hashlib.sha256(m.encode()).hexdigest(),
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "qwen2",
                        "families": ["qwen2"],
                        "parameter_size": "3.1B",
                        "quantization_level": "Q4_K_M",
                    },
                }
                for m in self.models
            ]
        }


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so streamed answers use chunked transfer encoding, as Ollama's Go server does;
    # that is what makes a dropped connection detectable by the client at all.
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama"

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    # --- routing ---

    def do_GET(self) -> None:
        self.fake._record(RecordedRequest("GET", self.path, None))
        if self.path == "/":
            self._send_text(200, "Ollama is running")
        elif self.fake.fail_mode == "error500":
            self._send_error(500, ERROR_500_TEXT)
        elif self.path == "/api/tags":
            self._send_json(200, self.fake._tags())
        elif self.path == "/api/version":
            self._send_json(200, {"version": self.fake.version})
        else:
            self._send_text(404, "404 page not found")

    def do_HEAD(self) -> None:
        self.fake._record(RecordedRequest("HEAD", self.path, None))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            self.fake._record(RecordedRequest("POST", self.path, None))
            self._send_error(400, "invalid character in JSON body")
            return
        self.fake._record(RecordedRequest("POST", self.path, body))
        body = body or {}

        if self.path not in {"/api/chat", "/api/generate", "/api/show"}:
            self._send_text(404, "404 page not found")
            return
        if self.fake.fail_mode == "error500":
            self._send_error(500, ERROR_500_TEXT)
            return
        model = body.get("model") or body.get("name") or ""
        if not model:
            self._send_error(400, "model is required")
            return
        if not self.fake._has_model(model):
            self._send_error(404, f'model "{model}" not found, try pulling it first')
            return
        if self.path == "/api/show":
            self._send_json(200, self._show())
        else:
            self._answer(body, model, chat=self.path == "/api/chat")

    # --- answers ---

    def _show(self) -> dict[str, Any]:
        return {
            "modelfile": "FROM qwen2.5:3b\n",
            "parameters": 'stop "<|im_end|>"',
            "template": "{{ .Prompt }}",
            "details": self.fake._tags()["models"][0]["details"] if self.fake.models else {},
            "model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768},
            "capabilities": ["completion", "tools"],
            "modified_at": "2025-05-01T10:00:00.000000000+08:00",
        }

    def _answer(self, body: dict[str, Any], model: str, *, chat: bool) -> None:
        tokens = self.fake._tokens_for(body)
        if self.fake.fail_mode == "slow" and self.fake._stopping.wait(self.fake.slow_s):
            return

        def part(text: str) -> dict[str, Any]:
            head: dict[str, Any] = {"model": model, "created_at": _now()}
            if chat:
                return {**head, "message": {"role": "assistant", "content": text}}
            return {**head, "response": text}

        final = {
            **part(""),
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_234_567_890,
            "load_duration": 12_345_678,
            "prompt_eval_count": 42,
            "prompt_eval_duration": 123_456_789,
            "eval_count": len(tokens),
            "eval_duration": 987_654_321,
        }
        if not body.get("stream", True):
            self._send_json(200, {**final, **part("".join(tokens))})
            return

        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Date", self.date_time_string())
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, token in enumerate(tokens):
                if self.fake.fail_mode in {"drop_mid_stream", "reset_mid_stream"} and (
                    i >= self.fake.drop_after
                ):
                    self._drop(reset=self.fake.fail_mode == "reset_mid_stream")
                    return
                if self.fake.token_delay_s and self.fake._stopping.wait(self.fake.token_delay_s):
                    return
                self._send_chunk({**part(token), "done": False})
            if self.fake.fail_mode in {"drop_mid_stream", "reset_mid_stream"}:
                self._drop(reset=self.fake.fail_mode == "reset_mid_stream")
                return
            self._send_chunk(final)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout); fine

    # --- wire helpers ---

    def _send_chunk(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self, *, reset: bool) -> None:
        """End the connection in the middle of a chunked body, as a crashed server would."""
        self.close_connection = True
        if reset:
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def schema_problem(reply: str, schema: dict[str, Any]) -> str | None:
    """Why `reply` is not JSON conforming to `schema` (None when it is)."""
    import jsonschema

    try:
        jsonschema.validate(json.loads(reply), schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        return f"{reply[:80]!r}: {str(exc).splitlines()[0]}"
    return None


def prompt_sentence_ids(request: dict[str, Any], fragment: str) -> list[int]:
    """The ids of the numbered sentences ("[3] …") of the request's last message that contain
    `fragment`."""
    content = request["messages"][-1]["content"]
    ids = []
    for line in content.splitlines():
        if line.startswith("[") and "]" in line and fragment in line:
            ids.append(int(line[1 : line.index("]")]))
    return ids


def json_tokens(obj: dict[str, Any], size: int = 3) -> list[str]:
    """`obj` as JSON text cut into pieces of `size` characters, as a model streams it."""
    text = json.dumps(obj, ensure_ascii=False)
    return [text[i : i + size] for i in range(0, len(text), size)]


def evidence_reply(cites: Sequence[str], answer: str, size: int = 3) -> Responder:
    """A responder giving `{"evidence": ids, "answer": answer}`, the ids of the prompt's
    sentences that contain each of `cites` (the first match each)."""

    def respond(request: dict[str, Any]) -> list[str]:
        ids = []
        for fragment in cites:
            found = prompt_sentence_ids(request, fragment)
            assert found, f"no numbered sentence contains {fragment!r}"
            ids.append(found[0])
        return json_tokens({"evidence": ids, "answer": answer}, size)

    return respond
