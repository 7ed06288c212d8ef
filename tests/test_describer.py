"""The image describer against a local server that speaks the chat-completions protocol, in-process and over
HTTP on a real ComfyUI server."""

from __future__ import annotations

import json
import os
import sys

import pytest
from endpoint import KEY, endpoint
from graphs import empty_image, node

pytestmark = pytest.mark.comfy

KEY_VARIABLE = "DISCOMFORT_API_KEY_TEST"  # the prefix any owner-set variable may carry


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    with endpoint() as running:
        yield running


def describe_prompt(base_url, timeout=5.0, retries=3, api_key_env=KEY_VARIABLE):
    return {
        "1": empty_image(),
        "2": node("DiscomfortImageDescriber", image=["1", 0], base_url=base_url, model="vision-test",
                  prompt="What is this?", max_tokens=50, detail="low", timeout=timeout, retries=retries,
                  api_key_env=api_key_env),
        "3": node("DiscomfortTestCapture", value=["2", 0], label="text"),
    }  # fmt: skip


def test_the_description_reaches_the_next_node_and_the_key_stays_out_of_the_workflow(comfy, captured, local):
    prompt = describe_prompt(local.url)
    comfy.run(prompt)
    assert captured["text"] == ["a picture (low)"]
    (request,) = local.seen
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "vision-test"
    assert request["body"]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert KEY not in json.dumps(prompt)


def test_429_then_success_is_retried(comfy, captured, local):
    local.script = [429, 429, "ok"]
    comfy.run(describe_prompt(local.url))
    assert captured["text"] == ["a picture (low)"] and len(local.seen) == 3


def test_401_fails_at_once_with_the_servers_message(comfy, local):
    local.script = [401]
    with pytest.raises(Exception, match=r"answered 401 \(check the API key\): Incorrect API key"):
        comfy.run(describe_prompt(local.url))
    assert len(local.seen) == 1


def test_500_is_retried_then_reported(comfy, local):
    local.script = [500, 500, 500]
    with pytest.raises(Exception, match="answered 500: Boom"):
        comfy.run(describe_prompt(local.url, retries=2))
    assert len(local.seen) == 3


def test_timeout_is_retried_then_reported(comfy, captured, local):
    local.script = ["slow", "ok"]
    comfy.run(describe_prompt(local.url, timeout=0.5, retries=1))
    assert captured["text"] == ["a picture (low)"]
    local.script = ["slow"]
    with pytest.raises(Exception, match="did not answer after 1 attempt"):
        comfy.run(describe_prompt(local.url, timeout=0.5, retries=0) | {"9": empty_image(0x010203)})


def test_retries_stop_when_the_image_has_had_its_total_time(comfy, local, monkeypatch):
    import nodes

    describe = sys.modules[nodes.NODE_CLASS_MAPPINGS["DiscomfortImageDescriber"].__module__]
    monkeypatch.setattr(describe, "MAX_TOTAL_SECONDS", 1.4)  # waits of 0.5 s, then 1 s: the second passes it
    local.script = [500] * 21
    with pytest.raises(Exception, match=r"answered 500: Boom; not retried: .* after 1.4 s in all"):
        comfy.run(describe_prompt(local.url, retries=20))
    assert len(local.seen) == 2


def test_a_missing_key_is_explained(comfy, local, monkeypatch):
    monkeypatch.delenv(KEY_VARIABLE)
    with pytest.raises(Exception, match=f"no API key: set the environment variable {KEY_VARIABLE}"):
        comfy.run(describe_prompt(local.url))


def test_over_http_a_variable_the_owner_listed_is_read_and_one_not_listed_is_refused(server, client):
    """HOME is set in every server's environment; only the owner's allow-list makes it a key."""
    allowed = server.base_directory / "user" / "discomfort" / "api_key_variables"
    allowed.parent.mkdir(parents=True, exist_ok=True)
    prompt = describe_prompt("", api_key_env="HOME", retries=0)
    prompt["3"] = node("PreviewAny", source=["2", 0])
    with endpoint() as local:
        prompt["2"]["inputs"]["base_url"] = local.url
        allowed.write_text("# variables a workflow may name in api_key_env\nPATH\n")
        (refused,) = client.run(prompt).events("execution_error")
        assert "'HOME' names a variable the machine's owner has not allowed" in refused["exception_message"]
        assert str(allowed) in refused["exception_message"] and not local.seen
        allowed.write_text("PATH\nHOME  # for this test\n")
        try:
            run = client.run(prompt)
        finally:
            allowed.unlink()
    assert run.status == "success", run.messages[-3:]
    (request,) = local.seen
    assert request["auth"] == f"Bearer {os.environ['HOME']}"
    assert run.outputs()["3"]["text"] == ["a picture (low)"]
