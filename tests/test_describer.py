"""The image describer against a local server that speaks the chat-completions protocol."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from graphs import empty_image, node

pytestmark = pytest.mark.comfy

KEY = "sk-test-not-a-real-key"


class FakeEndpoint(BaseHTTPRequestHandler):
    script: list = []  # what to answer next, one entry per request: "ok", 401, 429, 500, "slow"
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEndpoint.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        step = FakeEndpoint.script.pop(0) if FakeEndpoint.script else "ok"
        if step == "slow":
            time.sleep(1.5)
            step = "ok"
        if step == "ok":
            detail = body["messages"][0]["content"][1]["image_url"]["detail"]
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": f"a picture ({detail})"}}]})
        else:
            headers = {"Retry-After": "0.1"} if step == 429 else {}
            self._send(step, {"error": {"message": {401: "Incorrect API key", 429: "Rate limit", 500: "Boom"}[step]}},
                       headers)  # fmt: skip

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeEndpoint.script, FakeEndpoint.seen = [], []
    monkeypatch.setenv("DESCRIBER_TEST_KEY", KEY)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def describe_prompt(base_url, timeout=5.0, retries=3):
    return {
        "1": empty_image(),
        "2": node("DiscomfortImageDescriber", image=["1", 0], base_url=base_url, model="vision-test",
                  prompt="What is this?", max_tokens=50, detail="low", timeout=timeout, retries=retries,
                  api_key_env="DESCRIBER_TEST_KEY"),
        "3": node("DiscomfortTestCapture", value=["2", 0], label="text"),
    }  # fmt: skip


def test_the_description_reaches_the_next_node_and_the_key_stays_out_of_the_workflow(comfy, captured, endpoint):
    prompt = describe_prompt(endpoint)
    comfy.run(prompt)
    assert captured["text"] == ["a picture (low)"]
    (request,) = FakeEndpoint.seen
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "vision-test"
    assert request["body"]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert KEY not in json.dumps(prompt)


def test_429_then_success_is_retried(comfy, captured, endpoint):
    FakeEndpoint.script = [429, 429, "ok"]
    comfy.run(describe_prompt(endpoint))
    assert captured["text"] == ["a picture (low)"] and len(FakeEndpoint.seen) == 3


def test_401_fails_at_once_with_the_servers_message(comfy, endpoint):
    FakeEndpoint.script = [401]
    with pytest.raises(Exception, match=r"answered 401 \(check the API key\): Incorrect API key"):
        comfy.run(describe_prompt(endpoint))
    assert len(FakeEndpoint.seen) == 1


def test_500_is_retried_then_reported(comfy, endpoint):
    FakeEndpoint.script = [500, 500, 500]
    with pytest.raises(Exception, match="answered 500: Boom"):
        comfy.run(describe_prompt(endpoint, retries=2))
    assert len(FakeEndpoint.seen) == 3


def test_timeout_is_retried_then_reported(comfy, captured, endpoint):
    FakeEndpoint.script = ["slow", "ok"]
    comfy.run(describe_prompt(endpoint, timeout=0.5, retries=1))
    assert captured["text"] == ["a picture (low)"]
    FakeEndpoint.script = ["slow"]
    with pytest.raises(Exception, match="did not answer after 1 attempt"):
        comfy.run(describe_prompt(endpoint, timeout=0.5, retries=0) | {"9": empty_image(0x010203)})


def test_a_missing_key_is_explained(comfy, endpoint, monkeypatch):
    monkeypatch.delenv("DESCRIBER_TEST_KEY")
    with pytest.raises(Exception, match="no API key: set the environment variable DESCRIBER_TEST_KEY"):
        comfy.run(describe_prompt(endpoint))
