"""What the frontend is told while loops run, over the websocket of a real server: body nodes light up and show
their own images as each iteration runs, errors land on the node at fault, the history keeps what ran.

(issue 14; the browser tests of web/ check the same on screen)
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from comfy_client import PromptRejected, shown_on
from conftest import read_log
from graphs import empty_image, loop, node, port, save

pytestmark = pytest.mark.comfy

STAMP = "stamped on prompt"  # what the server pack's on-prompt handler writes into its nodes


def saving_loop(iterations: int, prefix: str) -> dict:
    """EmptyImage -> [image] -> ImageInvert -> [image], the inverted image saved inside the body each iteration."""
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("ImageInvert", image=["2", 0]),
        "4": port("image", ["3", 0]),
        "5": save(["3", 0], f"{prefix}_step"),
        "10": loop(iterations=iterations, uids="image"),
        "11": save(["10", 0], f"{prefix}_final"),
    }


def nested_saving(prefix: str) -> dict:
    """An outer loop (2 iterations) around an inner one (3) that inverts and saves: 6 saves in all."""
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0], tags="outer"),
        "3": port("image", ["2", 0], tags="inner"),
        "4": node("ImageInvert", image=["3", 0]),
        "5": port("image", ["4", 0], tags="inner"),
        "6": save(["4", 0], f"{prefix}_inner"),
        "7": loop(body="inner", iterations=3, uids="image"),
        "8": port("image", ["7", 0], tags="outer"),
        "9": loop(body="outer", iterations=2, uids="image"),
        "12": save(["9", 0], f"{prefix}_final"),
    }


def marked_done(run) -> set[str]:
    """The nodes the frontend counts as done: listed by execution_cached or named by executed (compat)."""
    done = {node_id for data in run.events("execution_cached") for node_id in data["nodes"]}
    return done | {data["node"] for data in run.events("executed")}


def test_body_nodes_run_and_show_each_iteration_where_they_are(client, request):
    prompt = saving_loop(5, request.node.name)
    run = client.run(prompt)
    assert run.status == "success", run.messages[-3:]
    assert {data["prompt_id"] for _, data in run.messages if "prompt_id" in data} == {run.prompt_id}
    assert len(run.events("execution_start")) == 1 and len(run.events("execution_success")) == 1
    executing = Counter(data["node"] for data in run.events("executing") if data["node"] is not None)
    # The carried value changes every iteration: what depends on it runs, and shows as running, every time.
    assert executing["3"] == executing["5"] == 5, executing
    assert any(state["state"] == "running" for data in run.events("progress_state")
               for node_id, state in data["nodes"].items() if node_id == "3")  # fmt: skip
    *saves, every = [data["output"]["images"] for data in run.events("executed") if shown_on(data) == "5"]
    assert len(saves) == 5 and len({images[0]["filename"] for images in saves}) == 5  # each iteration's own file
    assert every == [image for images in saves for image in images]  # and at the end all of them, on the node
    (loop_shown,) = [data["output"] for data in run.events("executed") if shown_on(data) == "10"]  # once, at the end
    assert [image["type"] for image in loop_shown["images"]] == ["temp"]  # a preview of the final value
    texts = [data["text"] for data in run.events("progress_text") if data["node_id"] == "10"]
    assert texts == [f"iteration {i}/5" for i in range(6)]
    assert marked_done(run) >= set(prompt)  # the frontend's total progress reaches 100%
    history = {run.history["meta"][node_id]["display_node"]: output for node_id, output in run.outputs().items()}
    assert len(history["5"]["images"]) == 5 and len(history["10"]["images"]) == 1


def test_nested_bodies_show_on_their_own_nodes_too(client, request):
    prompt = nested_saving(request.node.name)
    run = client.run(prompt)
    assert run.status == "success", run.messages[-3:]
    executing = Counter(data["node"] for data in run.events("executing") if data["node"] is not None)
    assert executing["4"] == executing["6"] == 6 and executing["7"] == 2, executing
    # Each inner iteration's save, then each inner loop's outputs at its end, then the outer loop's at its end.
    assert len([data for data in run.events("executed") if shown_on(data) == "6"]) == 6 + 2 + 1
    loops = [(data["node"], data["iteration"], data["state"]) for data in run.events("discomfort.loop")
             if data["state"] != "running"]  # fmt: skip
    assert loops == [("7", 3, "finished"), ("7", 3, "finished"), ("9", 2, "finished")]
    assert marked_done(run) >= set(prompt)
    history = {run.history["meta"][node_id]["display_node"]: output for node_id, output in run.outputs().items()}
    assert len(history["6"]["images"]) == 6


def test_a_failing_body_node_is_reported_as_itself(client, request):
    prompt = {
        "1": port("iteration"),
        "2": port("image", ["9", 0]),
        "3": {**node("DiscomfortTestFailAt", value=["2", 0], index=["1", 0], fail_at=2), "_meta": {"title": "Flaky"}},
        "4": node("ImageInvert", image=["3", 0]),
        "5": port("image", ["4", 0]),
        "6": save(["4", 0], request.node.name),
        "9": empty_image(),
        "10": loop(iterations=5, uids="image"),
    }
    run = client.run(prompt)
    (error,) = run.events("execution_error")
    assert error["node_id"] == "3" and error["node_type"] == "DiscomfortTestFailAt"
    message = error["exception_message"]
    assert "loop 10, iteration 3/5" in message and "node 3 'Flaky' (DiscomfortTestFailAt)" in message
    assert "planted failure at index 2" in message
    assert run.history["status"]["status_str"] == "error"
    # What the two finished iterations saved is in the history, under the node that saved it.
    history = {run.history["meta"][node_id]["display_node"]: output for node_id, output in run.outputs().items()}
    assert len(history["6"]["images"]) == 2


@pytest.mark.parametrize(
    "change, at_fault, message",
    [
        (lambda p: p["4"]["inputs"].update(unique_id=""), ["10", "4"], "DiscomfortPort node 4 has an empty unique_id"),
        (lambda p: p.update({"7": port("image", ["3", 0])}), ["10", "4", "7"], "ports 4, 7 are all downstream-most"),
        (lambda p: p["10"]["inputs"].update(stop_when="settled"), ["10"], "stop_when names 'settled'"),
    ],
    ids=["empty uid", "two exits", "unknown stop_when"],
)
def test_problems_found_before_running_come_back_as_node_errors_on_the_node_at_fault(client, change, at_fault,
                                                                                    message):  # fmt: skip
    prompt = saving_loop(2, "never")
    change(prompt)
    with pytest.raises(PromptRejected) as rejected:
        client.queue(prompt)
    node_errors = rejected.value.body["node_errors"]
    assert sorted(node_errors) == at_fault
    assert all(message in error["details"] for node_id in at_fault for error in node_errors[node_id]["errors"])


def test_a_cancelled_loop_keeps_what_its_finished_iterations_saved(client, server, log_file, request):
    prompt = {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("DiscomfortTestStall", value=["2", 0], seconds=0.2, log=str(log_file)),
        "4": port("image", ["3", 0]),
        "5": save(["3", 0], request.node.name),
        "10": loop(iterations=200, uids="image"),
    }
    prompt_id = client.queue(prompt)
    deadline = time.monotonic() + 60
    while len(read_log(log_file)) < 3:
        assert time.monotonic() < deadline, "the loop never got going"
        time.sleep(0.05)
    threading.Timer(0, client.interrupt).start()
    run = client.wait(prompt_id, timeout=60)
    assert run.events("execution_interrupted")
    saved = sorted(path.name for path in (server.base_directory / "output").glob(f"{request.node.name}_*.png"))
    history = {run.history["meta"][node_id]["display_node"]: output for node_id, output in run.outputs().items()}
    assert saved and sorted(image["filename"] for image in history["5"]["images"]) == saved
    cancelled = [data for data in run.events("discomfort.loop") if data["state"] == "cancelled"]
    assert cancelled and cancelled[-1]["iteration"] == len(saved)


def test_queueing_a_body_output_node_alone_runs_its_loop(client, server, request):
    prompt = saving_loop(3, request.node.name)
    run = client.wait(client.queue(prompt, targets=["5"]))
    assert run.status == "success", run.messages[-3:]
    assert len(list((server.base_directory / "output").glob(f"{request.node.name}_step_*.png"))) == 3
    assert not list((server.base_directory / "output").glob(f"{request.node.name}_final_*.png"))  # not asked for


def test_an_input_port_with_nothing_to_give_says_so(client):
    run = client.run({"1": port("image", tags=""), "2": node("PreviewImage", images=["1", 0])})
    (error,) = run.events("execution_error")
    assert error["node_id"] == "1"
    assert "DiscomfortPort node 1 (uid 'image') is an INPUT port with nothing to give" in error["exception_message"]


def test_progress_text_a_body_node_sends_the_server_shows_on_the_node_the_canvas_has(server, client, log_file):
    # A body node of a workflow file is not on the canvas: what it tells the server directly (as ComfyUI's own
    # loops do) shows on the loop node. A body node the canvas has shows it on itself.
    workflows = server.base_directory / "user" / "default" / "workflows" / "texts"
    workflows.mkdir(parents=True, exist_ok=True)
    stamp = node("DiscomfortTestServerStamp", value=["1", 0], log=str(log_file), stamp="from the file")
    (workflows / "stamp.json").write_text(json.dumps({"1": port("x", tags=""), "2": stamp,
                                                      "3": port("x", ["2", 0], tags="")}))  # fmt: skip
    inputs = {"workflows": "texts/stamp.json", "iterations": 2, "uids": "x", "accumulate": "", "stop_when": "",
              "value_1": ["0", 0]}  # fmt: skip
    prompt = {
        "0": node("DiscomfortTestAdd", a=1, b=0),
        "10": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs},
        "11": node("DiscomfortTestCapture", value=["10", 0], label="texts"),
        "5": port("y", ["0", 0]),
        "6": node("DiscomfortTestServerStamp", value=["5", 0], log=str(log_file), stamp="set in the prompt"),
        "7": port("y", ["6", 0]),
        "20": loop(iterations=2, uids="y"),
        "out": node("DiscomfortTestCapture", value=["20", 0], label="texts"),
    }
    run = client.run(prompt)
    assert run.status == "success", run.messages[-3:]
    texts = [(data["node_id"], data["text"]) for data in run.events("progress_text")
             if not data["text"].startswith("iteration")]  # fmt: skip
    # (the pack's on-prompt handler stamps the stamp nodes of the prompt it is given: the inline one, not the file's)
    assert Counter(texts) == {("10", "from the file"): 2, ("6", STAMP): 2}
