"""A local server speaking the chat-completions protocol, scripted request by request, for the describer's tests.

It runs in the test process; an in-process ComfyUI and a ComfyUI server subprocess both reach it on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-test-not-a-real-key-0123456789"
MESSAGES = {401: "Incorrect API key", 429: "Rate limit", 500: "Boom"}


@dataclass
class Endpoint:
    """`script`: what to answer next, one step per request (default "ok"):

    "ok", or a status (401, 429, 500) with an error message; "slow" (ok after 1.5 s); "hang" (nothing for 60 s);
    "retry_after_hour" (429, Retry-After: 3600); "trickle" (a valid answer, one byte every 0.1 s); "huge" (a
    64 MiB body); ("redirect", status, url); "echo_key" (401 quoting the key it was sent); "ok_echo_key" (a
    description quoting the key); ("no_choices_echo_key", pad) (200 without choices, quoting the key `pad`
    characters into its body).
    """

    url: str  # base_url for the describer: http://127.0.0.1:<port>/v1
    script: list[Any] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)  # one entry per request: path, auth, body
    finished: list[bool] = field(default_factory=list)  # per request: whether its whole answer was sent
    arrived: threading.Event = field(default_factory=threading.Event)  # set at each request


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            auth = self.headers.get("Authorization")
            endpoint.seen.append({"path": self.path, "auth": auth, "body": body})
            endpoint.arrived.set()
            step = endpoint.script.pop(0) if endpoint.script else "ok"
            try:
                self._answer(step, body, auth)
                endpoint.finished.append(True)
            except (BrokenPipeError, ConnectionResetError):
                endpoint.finished.append(False)  # the client hung up before the answer was complete

        def do_GET(self):  # what a client that turns a redirected POST into a GET sends (urllib does, for 302)
            endpoint.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": None})
            endpoint.arrived.set()
            self._send(404, {"error": {"message": "only POST is served"}})

        def _answer(self, step, body, auth):
            if step == "slow":
                time.sleep(1.5)
                step = "ok"
            if step == "hang":
                time.sleep(60)
                step = "ok"
            if step in ("ok", "ok_echo_key"):
                detail = body["messages"][0]["content"][1]["image_url"]["detail"]
                text = f"a picture ({detail})" + (f" sent with {auth}" if step == "ok_echo_key" else "")
                self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})
            elif isinstance(step, (list, tuple)) and step[0] == "no_choices_echo_key":
                self._send(200, {"error": "x" * step[1] + f"no such model for {auth}"})
            elif step == "echo_key":
                self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
            elif step == "retry_after_hour":
                self._send(429, {"error": {"message": "Rate limit"}}, {"Retry-After": "3600"})
            elif step == "trickle":
                data = json.dumps({"choices": [{"message": {"content": "a slow picture"}}]}).encode()
                self._start(200, len(data))
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            elif step == "huge":
                size = 64 * 1024**2
                self._start(200, size)
                chunk = b" " * 65536
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
            elif isinstance(step, (list, tuple)) and step[0] == "redirect":
                self.send_response(step[1])
                self.send_header("Location", step[2])
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                headers = {"Retry-After": "0.1"} if step == 429 else {}
                self._send(step, {"error": {"message": MESSAGES[step]}}, headers)

        def _start(self, status, length, headers=None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def _send(self, status, payload, headers=None):
            data = json.dumps(payload).encode()
            self._start(status, len(data), headers)
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def endpoint(host: str = "127.0.0.1") -> Iterator[Endpoint]:
    """A scripted endpoint on a free port of `host`, stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # the handler needs the Endpoint, made below
    running = Endpoint(f"http://{host}:{server.server_address[1]}/v1")
    server.RequestHandlerClass = _handler(running)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        server.shutdown()
        server.server_close()
