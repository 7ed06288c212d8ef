"""A small client for a real ComfyUI server, and the server process itself, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PromptRun:
    """A prompt as one client saw it: its id, every websocket message addressed to it, and its history entry."""

    prompt_id: str
    messages: list[tuple[str, dict]] = field(default_factory=list)
    history: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.history.get("status", {}).get("status_str", "unknown")

    def events(self, name: str) -> list[dict]:
        return [data for event, data in self.messages if event == name]

    def outputs(self) -> dict[str, Any]:
        return self.history.get("outputs", {})


class ComfyClient:
    """Speaks ComfyUI's HTTP and websocket API: POST /prompt, /ws, /history, /view, /interrupt, /object_info."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.client_id = str(uuid.uuid4())
        self._ws: websocket.WebSocket | None = None
        self.received: list[tuple[str, dict]] = []  # every message this client was sent, any prompt

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=30) as response:
            return json.loads(response.read())

    def post_json(self, path: str, payload: Any) -> Any:
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise PromptRejected(error.code, json.loads(error.read() or b"{}")) from None
        return json.loads(body) if body else None

    def connect(self) -> None:
        if self._ws is None:
            ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
            self._ws = websocket.create_connection(ws_url, timeout=60)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def queue(self, prompt: dict, extra_data: dict | None = None, targets: list[str] | None = None) -> str:
        """POST /prompt as the frontend does; `targets` asks for a partial run ("Queue selected output nodes")."""
        self.connect()
        payload = {"prompt": prompt, "client_id": self.client_id, "extra_data": extra_data or {}}
        if targets is not None:
            payload["partial_execution_targets"] = targets
        return self.post_json("/prompt", payload)["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0) -> PromptRun:
        """Collect this prompt's websocket messages until it ends, then read its history."""
        self.connect()
        run = PromptRun(prompt_id)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s; saw {run.messages[-5:]}")
            self._ws.settimeout(remaining)
            frame = self._ws.recv()
            if isinstance(frame, bytes):
                event, data = decode_binary(frame)
                if event is None:
                    continue  # preview images
            else:
                message = json.loads(frame)
                event, data = message.get("type"), message.get("data") or {}
            self.received.append((event, data))
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            run.messages.append((event, data))
            finished = event in ("execution_error", "execution_interrupted") or (
                event == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id
            )
            if finished:
                break
        run.history = self._history(prompt_id)
        return run

    def run(self, prompt: dict, timeout: float = 120.0) -> PromptRun:
        return self.wait(self.queue(prompt), timeout)

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    def view(self, image: dict) -> bytes:
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(f"{self.base_url}/view?{query}", timeout=30) as response:
            return response.read()

    def upload(self, data: bytes, filename: str, subfolder: str = "", type: str = "input",
               overwrite: bool = False) -> dict:  # fmt: skip
        """POST /upload/image, as the frontend does (multipart form); it takes any file, not only images."""
        boundary = uuid.uuid4().hex
        fields = {"subfolder": subfolder, "type": type, "overwrite": "true" if overwrite else "false"}
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                 for name, value in fields.items()]  # fmt: skip
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n\r\n'.encode()
        )
        body = b"".join(parts) + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            self.base_url + "/upload/image",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def _history(self, prompt_id: str) -> dict:
        # The history entry is written just after the last websocket message; give it a moment.
        for _ in range(100):
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None:
                return entry
            time.sleep(0.05)
        raise TimeoutError(f"no history for prompt {prompt_id}")


def shown_on(executed: dict) -> str:
    """The node an `executed` message shows its outputs on, as the frontend reads it."""
    return str(executed.get("display_node") or executed["node"])


BINARY_TEXT = 3  # ComfyUI's BinaryEventTypes.TEXT: progress text for a node


def decode_binary(frame: bytes) -> tuple[str | None, dict]:
    """Progress text frames become ("progress_text", {"node_id", "text"}); other binary frames (None, {})."""
    (event_type,) = struct.unpack(">I", frame[:4])
    if event_type != BINARY_TEXT:
        return None, {}
    (length,) = struct.unpack(">I", frame[4:8])
    return "progress_text", {"node_id": frame[8 : 8 + length].decode(), "text": frame[8 + length :].decode()}


class PromptRejected(Exception):
    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        super().__init__(f"HTTP {status}: {json.dumps(body)[:2000]}")


@dataclass
class ComfyServer:
    process: subprocess.Popen
    url: str
    base_directory: Path
    log_path: Path

    def client(self) -> ComfyClient:
        return ComfyClient(self.url)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def comfy_server(
    comfyui: Path, base_directory: Path, *, extra_args: list[str] | None = None, startup_timeout: float = 180.0
) -> Iterator[ComfyServer]:
    """Start ComfyUI's main.py on 127.0.0.1 on a free port with `base_directory` as its base, stop it by PID."""
    port = free_port()
    log_path = base_directory / "server.log"
    command = [
        sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-api-nodes",
        "--base-directory", str(base_directory), "--database-url", "sqlite:///:memory:", *(extra_args or []),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=comfyui, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
    server = ComfyServer(process, f"http://127.0.0.1:{port}", base_directory, log_path)
    try:
        _wait_ready(server, startup_timeout)
        yield server
    finally:
        stop(process)


def _wait_ready(server: ComfyServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/system_stats", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise TimeoutError(f"ComfyUI did not answer /system_stats in {timeout} s:\n{server.log_tail()}")


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def link_custom_node(custom_nodes: Path, package_root: Path, name: str = "discomfort") -> Path:
    """Install this checkout into a custom_nodes folder the way users do: a folder (here a link) named anything."""
    custom_nodes.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / name
    if link.is_symlink() or link.exists():
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    link.symlink_to(package_root, target_is_directory=True)
    return link
