"""A small threaded HTTP server that local provider stand-ins build on.

The stand-ins speak each provider's real wire format (paths, auth, bodies, error shapes), so
the adapters are tested through the official client libraries, over real sockets, exactly as
they run in production; only the base URL differs. Tests, benchmarks and manual runs share
them:

    with SendGridServer(api_key="SG.test") as server:
        own = SendGridSettings(sendgrid_api_key="SG.test", sendgrid_base_url=server.base_url)
        ...
        server.requests[0].body["custom_args"]

Every request is recorded (method, path, headers, parsed body, arrival time on the monotonic
clock) before it is answered. `fail_next` queues canned answers (throttling, outages, slow
answers) that take precedence over the provider logic, one per request, in order.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


def provider_specs_dir() -> Path:
    """Where the providers' official OpenAPI documents live: vendored beside this module
    (CARILLON_PROVIDER_SPECS points elsewhere, e.g. at newer copies)."""
    configured = os.environ.get("CARILLON_PROVIDER_SPECS")
    return Path(configured) if configured else Path(__file__).resolve().parent / "specs"


def load_spec(filename: str) -> dict[str, Any]:
    path = provider_specs_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"provider spec {filename} not found in {path.parent}; "
            "set CARILLON_PROVIDER_SPECS to the directory holding the providers' OpenAPI files"
        )
    with path.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    # Header names are lower-cased: HTTP header names are case-insensitive.
    headers: dict[str, str]
    raw_body: bytes
    # JSON bodies parsed to Python values; form bodies to {name: value} (a list for repeated
    # names); anything else left as None (see raw_body).
    body: Any
    arrived_at: float

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def text(self) -> str:
        return self.raw_body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode("utf-8"), merged)


@dataclass(frozen=True)
class CannedReply:
    reply: Reply
    # Hold the answer this long (released at once when the server stops): a slow provider.
    delay_seconds: float = 0.0


def parse_body(content_type: str, raw: bytes) -> Any:
    kind = content_type.split(";", 1)[0].strip().lower()
    if not raw:
        return None
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    if kind == "application/x-www-form-urlencoded":
        pairs = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] if len(values) == 1 else values for name, values in pairs.items()}
    return None


class _QuietHTTPServer(ThreadingHTTPServer):
    """A client that goes away with a kept-alive connection open (a worker process stopped at
    the end of a run) is no error of the provider's; anything else is still printed."""

    # Many clients connecting at once (a benchmark's) must wait in the queue, not be reset.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ProviderServer:
    """Base class: subclasses implement `respond(request) -> Reply` with the provider's logic."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._canned: deque[CannedReply] = deque()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _QuietHTTPServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot, safe to iterate while requests keep arriving."""
        with self._condition:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived; raise TimeoutError otherwise."""
        with self._condition:
            if not self._condition.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(
                    f"{type(self).__name__}: {len(self._requests)} of {count} requests "
                    f"arrived within {timeout}s"
                )
            return list(self._requests)

    def fail_next(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        times: int = 1,
        delay_seconds: float = 0.0,
    ) -> None:
        """Answer the next `times` requests with this instead of the provider logic.

        `body` may be bytes/str (sent as is) or any JSON value (sent as application/json).
        """
        if isinstance(body, bytes | str):
            raw = body.encode("utf-8") if isinstance(body, str) else body
            reply = Reply(status, raw, dict(headers or {}))
        elif body is None:
            reply = Reply(status, b"", dict(headers or {}))
        else:
            reply = Reply.json(status, body, headers)
        with self._condition:
            for _ in range(times):
                self._canned.append(CannedReply(reply, delay_seconds))

    def reset(self) -> None:
        """Forget recorded requests and pending canned answers (between tests)."""
        with self._condition:
            self._requests.clear()
            self._canned.clear()

    # ----------------------------------------------------------------- provider logic

    def respond(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    # ----------------------------------------------------------------- internals

    def _record(self, request: RecordedRequest) -> CannedReply | None:
        with self._condition:
            self._requests.append(request)
            canned = self._canned.popleft() if self._canned else None
            self._condition.notify_all()
        return canned

    def _answer(self, request: RecordedRequest) -> Reply:
        canned = self._record(request)
        if canned is not None:
            if canned.delay_seconds > 0:
                self._stopping.wait(canned.delay_seconds)
            return canned.reply
        try:
            return self.respond(request)
        except Exception as exc:  # a bug in a stand-in must show up as a 500, not a hang
            return Reply.json(500, {"stand_in_error": f"{type(exc).__name__}: {exc}"})


def _make_handler(server: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "CarillonProviderStandIn/1.0"
        # The status line and headers go out before the body: without TCP_NODELAY the body
        # waits for the client's delayed ACK, 40 ms on Linux, on every kept-alive request.
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            split = urlsplit(self.path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=headers,
                raw_body=raw,
                body=parse_body(headers.get("content-type", ""), raw),
                arrived_at=time.monotonic(),
            )
            reply = server._answer(request)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.body and self.command != "HEAD":
                    self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its timeout fired during a canned delay)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the recorded requests are the log."""

    return Handler


def unused_port() -> int:
    """A local port nothing listens on, for "connection refused" cases."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openapi_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema object as plain JSON Schema: `nullable: true` becomes a `null`
    alternative (jsonschema does not know the OpenAPI keyword and would refuse nulls)."""
    if isinstance(node, list):
        return [openapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: openapi_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        kind = converted.get("type")
        if isinstance(kind, str):
            converted["type"] = [kind, "null"]
        elif "$ref" in converted:
            converted = {"anyOf": [{"$ref": converted.pop("$ref")}, {"type": "null"}], **converted}
        if "enum" in converted and None not in converted["enum"]:
            converted["enum"] = [*converted["enum"], None]
    return converted
