"""DiscomfortLoop through a real ComfyUI server: what the websocket shows, saved files, interrupts."""

from __future__ import annotations

import io
import threading
import time

import pytest
from conftest import read_log
from graphs import assert_color, assert_inverted, empty_image, loop, node, port, save
from PIL import Image

pytestmark = pytest.mark.comfy


def invert_loop(iterations: int, prefix: str, body_prefix: str | None = None) -> dict:
    prompt = {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("ImageInvert", image=["2", 0]),
        "4": port("image", ["3", 0]),
        "10": loop(iterations=iterations, uids="image"),
        "11": save(["10", 0], prefix),
    }
    if body_prefix:
        prompt["5"] = save(["3", 0], body_prefix)
    return prompt


def pixel(client, image: dict) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(client.view(image))) as saved:
        return saved.convert("RGB").getpixel((0, 0))


def test_ten_inverts_over_the_server_give_back_the_original(client, request):
    run = client.run(invert_loop(10, request.node.name))
    assert run.status == "success", run.messages
    (image,) = run.outputs()["11"]["images"]
    assert_color(pixel(client, image))


def test_a_save_inside_the_body_writes_every_iteration(client, server, request):
    prefix = request.node.name + "_body"
    run = client.run(invert_loop(20, request.node.name, body_prefix=prefix))
    assert run.status == "success"
    files = sorted((server.base_directory / "output").glob(f"{prefix}_*.png"))
    assert len(files) == 20
    for index, path in enumerate(files):
        with Image.open(path) as saved:
            value = saved.convert("RGB").getpixel((0, 0))
        if index % 2 == 0:
            assert_inverted(value)
        else:
            assert_color(value)


def test_interrupt_stops_the_loop_and_the_next_prompt_runs(client, log_file, request):
    prompt = {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("DiscomfortTestStall", value=["2", 0], seconds=0.2, log=str(log_file)),
        "4": port("image", ["3", 0]),
        "10": loop(iterations=200, uids="image"),
        "11": save(["10", 0], request.node.name),
    }
    prompt_id = client.queue(prompt)
    deadline = time.monotonic() + 60
    while len(read_log(log_file)) < 3:
        assert time.monotonic() < deadline, "the loop never got going"
        time.sleep(0.05)
    interrupted_at = time.monotonic()
    threading.Timer(0, client.interrupt).start()
    run = client.wait(prompt_id, timeout=60)
    assert time.monotonic() - interrupted_at < 10
    assert run.events("execution_interrupted"), run.messages[-5:]
    assert run.events("execution_interrupted")[0]["node_id"] == "10"
    assert len(read_log(log_file)) < 20
    after = client.run(invert_loop(2, request.node.name + "_after"))
    assert after.status == "success"
