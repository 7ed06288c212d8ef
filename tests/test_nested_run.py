"""A body runs on a private executor under the state of the run around it (executor/nested.py, executor/compat.py).

What differs between versions is checked where this ComfyUI has it: the preview method and usage source an inner
run gets (0.33+), the RAM-release hook it leaves alone (0.33+), node replacements (0.33+).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from conftest import read_log
from graphs import loop, node, port

pytestmark = pytest.mark.comfy


def state_around_a_loop() -> dict:
    """The state node once inside a loop's body (2 iterations) and once after the loop."""
    return {
        "0": node("DiscomfortTestAdd", a=1, b=0),
        "1": port("x", ["0", 0]),
        "2": node("DiscomfortTestProcessState", value=["1", 0], label="inside"),
        "3": port("x", ["2", 0]),
        "10": loop(iterations=2, uids="x"),
        "11": node("DiscomfortTestProcessState", value=["10", 0], label="outside"),
        "out": node("DiscomfortTestCapture", value=["11", 0], label="result"),
    }


def test_a_body_runs_under_the_outer_runs_preview_method_usage_source_and_ram_release_hook(comfy, captured):
    comfy.run(state_around_a_loop(), extra_data={"preview_method": "latent2rgb", "comfy_usage_source": "tests"})
    inside, outside = captured["inside"], captured["outside"]
    # The node after the loop runs after the inner runs: what they changed and did not put back would show here.
    assert len(inside) == 2 and inside == [outside[0]] * 2
    if hasattr(importlib.import_module("latent_preview"), "set_preview_method"):  # 0.33+: chosen per prompt
        assert outside[0]["preview_method"] == "latent2rgb"
    if "COMFY_USAGE_SOURCE" in Path(importlib.import_module("execution").__file__).read_text():  # 0.33+: hidden
        assert outside[0]["usage_source"] == "tests"
    if importlib.util.find_spec("comfy.memory_management") is not None:  # 0.33+: the outer cache's hook
        assert outside[0]["ram_release"] is not None
    assert captured["result"] == [1]


def test_an_interrupt_leaves_the_private_event_loop_running(comfy, loaded):
    import nodes
    from discomfort.executor.compat import interrupt_exception

    runner = loaded.discomfort.executor.nested.NestedRunner("interrupted")
    private = runner._loop.loop
    prompt = {"1": node("DiscomfortTestCapture", value=1, label="never")}
    nodes.interrupt_processing(True)
    try:
        with pytest.raises(interrupt_exception()):
            runner.run(prompt, "interrupted", ["1"], {})
    finally:
        nodes.interrupt_processing(False)
    assert runner._loop.loop is private and not private.is_closed()
    runner.close()


def retired_in_a_body(log: str) -> dict:
    """A loop (3 iterations) whose body holds DiscomfortTestRetiredStamp, which the server pack replaces (0.33+)."""
    return {
        "0": node("DiscomfortTestAdd", a=0, b=0),
        "1": port("x", ["0", 0]),
        "2": node("DiscomfortTestAdd", a=["1", 0], b=2),
        "3": {**node("DiscomfortTestRetiredStamp", item=["2", 0], log=log), "_meta": {"title": "retired"}},
        "4": port("x", ["3", 0]),
        "10": loop(iterations=3, uids="x"),
        "out": node("DiscomfortTestCapture", value=["10", 0], label="replaced"),
    }


def needs_node_replacements() -> None:
    import server

    if not hasattr(server.PromptServer.instance, "node_replace_manager"):
        pytest.skip("this ComfyUI has no node replacements (they came with 0.33)")


def test_node_replacements_reach_a_parked_body(comfy, captured, log_file):
    needs_node_replacements()
    comfy.run(retired_in_a_body(str(log_file)))
    assert captured["replaced"] == [6]
    assert read_log(log_file) == ["replaced"] * 3


def test_node_replacements_reach_a_parked_body_queued_on_the_server(comfy, client, log_file):
    needs_node_replacements()  # the server runs the ComfyUI this process booted
    run = client.run(retired_in_a_body(str(log_file)))
    assert run.status == "success", run.messages
    assert read_log(log_file) == ["replaced"] * 3
