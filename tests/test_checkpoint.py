"""Checkpoint and resume: after a failure in-process, and after SIGKILL of a real server."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import install_custom_nodes, read_log
from graphs import loop, loop_output, node, port, save
from PIL import Image

pytestmark = pytest.mark.comfy


def counter(iterations: int, checkpoint: str, resume: bool, log: str, *, flag: str = "", fail_at: int = -1,
            stall: float = 0.0, prefix: str = "count") -> dict:  # fmt: skip
    """count += 1 each iteration; every iteration's count also becomes a 4x4 image (color = count), accumulated."""
    body_loop = loop(iterations=iterations, uids="count", accumulate="frame")
    body_loop["inputs"].update(checkpoint=checkpoint, resume=resume, storage="ram")
    return {
        "1": node("DiscomfortTestAdd", a=0, b=0),
        "2": port("count", ["1", 0]),
        "20": port("iteration"),
        "3": node("DiscomfortTestAdd", a=["2", 0], b=1),
        "4": node("DiscomfortTestStall", value=["3", 0], seconds=stall, log=log),
        "5": node("DiscomfortTestFailAt", value=["4", 0], index=["20", 0], fail_at=fail_at, only_if_exists=flag),
        "6": port("count", ["5", 0]),
        "7": node("EmptyImage", width=4, height=4, batch_size=1, color=["5", 0]),
        "8": port("frame", ["7", 0]),
        "10": body_loop,
        "11": save(loop_output("10", "accumulated_1"), f"{prefix}_frames"),
        "12": node("EmptyImage", width=4, height=4, batch_size=1, color=["10", 0]),
        "13": save(["12", 0], f"{prefix}_final"),
    }


def blue(path) -> int:
    with Image.open(path) as image:
        return image.convert("RGB").getpixel((0, 0))[2]


def test_resume_after_a_failure_redoes_nothing_finished(comfy, log_file, tmp_path, request):
    flag = tmp_path / "fail"
    flag.touch()
    name, log = request.node.name, str(log_file)
    with pytest.raises(Exception, match="iteration 7/10"):
        comfy.run(counter(10, name, False, log, flag=str(flag), fail_at=6))
    assert len(read_log(log_file)) == 7
    state = json.loads((comfy.output_directory / "discomfort" / "checkpoints" / name / "state.json").read_text())
    assert state["iteration"] == 6
    flag.unlink()
    result = comfy.run(counter(10, name, True, log, flag=str(flag), fail_at=6, prefix=name))
    assert len(read_log(log_file)) == 7 + 4  # iterations 7 to 10 only
    frames = sorted(comfy.output_directory.glob(f"{name}_frames_*.png"))
    assert [blue(path) for path in frames] == list(range(1, 11))  # the six from before the failure included
    (final,) = comfy.output_directory.glob(f"{name}_final_*.png")
    assert blue(final) == 10
    assert result.outputs["13"]["images"]


def test_resume_refuses_a_changed_body(comfy, log_file, request):
    name, log = request.node.name, str(log_file)
    comfy.run(counter(3, name, False, log))
    changed = counter(3, name, True, log)
    changed["3"]["inputs"]["b"] = 2
    with pytest.raises(Exception, match=r"holds a checkpoint of a different loop .* resume refused"):
        comfy.run(changed)


def test_resuming_a_finished_run_runs_nothing(comfy, log_file, request):
    name, log = request.node.name, str(log_file)
    comfy.run(counter(4, name, False, log))
    comfy.run(counter(4, name, True, log, prefix=name))
    assert len(read_log(log_file)) == 4
    (final,) = comfy.output_directory.glob(f"{name}_final_*.png")
    assert blue(final) == 4


def test_checkpoint_names_cannot_leave_the_output_folder(comfy, log_file):
    for name in ("../escape", "/tmp/abs", "a/../../b"):
        with pytest.raises(Exception, match=r"is outside|give a checkpoint folder name relative to"):
            comfy.run(counter(2, name, False, str(log_file)))


def test_sigkill_mid_loop_then_resume_finishes_the_same_result(tmp_path_factory, log_file):
    from comfy_client import comfy_server
    from conftest import comfyui_root

    base = tmp_path_factory.mktemp("killed")
    install_custom_nodes(base / "custom_nodes")
    state_file = base / "output" / "discomfort" / "checkpoints" / "kill" / "state.json"
    log = str(log_file)
    with comfy_server(comfyui_root(), base) as first:
        client = first.client()
        client.queue(counter(12, "kill", False, log, stall=0.4, prefix="killed"))
        deadline = time.monotonic() + 60
        while not (state_file.exists() and json.loads(state_file.read_text())["iteration"] >= 3):
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
        client.close()
    committed = json.loads(state_file.read_text())["iteration"]
    ran_before = len(read_log(log_file))
    assert committed < 12 and ran_before in (committed, committed + 1)  # at most one iteration in flight
    with comfy_server(comfyui_root(), base) as second:
        client = second.client()
        run = client.run(counter(12, "kill", True, log, stall=0.4, prefix="resumed"), timeout=120)
        assert run.status == "success", run.messages[-3:]
        assert len(read_log(log_file)) - ran_before == 12 - committed
        frames = run.outputs()["11"]["images"]
        assert [blue(io.BytesIO(client.view(image))) for image in frames] == list(range(1, 13))
        (final,) = run.outputs()["13"]["images"]
        assert blue(io.BytesIO(client.view(final))) == 12
        client.close()


def test_a_full_disk_mid_loop_loses_no_finished_iteration(comfy, log_file, request, monkeypatch):
    import discomfort.serialization.stores as stores

    name, log = request.node.name, str(log_file)
    real_save, calls = stores._save_tensors, []

    def disk_fills_up(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 5:  # the accumulated frame of iteration 3 or the state after it: the disk is full
            raise OSError(28, "No space left on device")
        return real_save(tensors, path, metadata)

    # The loop node in ComfyUI is the custom-node copy of Discomfort: patch the stores module it uses too.
    import sys

    for module in [m for key, m in list(sys.modules.items()) if key.endswith("serialization.stores")]:
        monkeypatch.setattr(module, "_save_tensors", disk_fills_up)
    with pytest.raises(Exception, match="No space left on device"):
        comfy.run(counter(6, name, False, log))
    state_file = comfy.output_directory / "discomfort" / "checkpoints" / name / "state.json"
    committed = json.loads(state_file.read_text())["iteration"]
    assert 1 <= committed < 6
    assert not list(state_file.parent.rglob("*.tmp")), "a partial file was left behind"
    monkeypatch.undo()  # the disk has room again
    comfy.run(counter(6, name, True, log, prefix=name))
    (final,) = comfy.output_directory.glob(f"{name}_final_*.png")
    assert blue(final) == 6
    frames = sorted(comfy.output_directory.glob(f"{name}_frames_*.png"))
    assert [blue(path) for path in frames] == [1, 2, 3, 4, 5, 6]


def test_a_checkpoint_a_server_loop_is_using_is_refused_to_another_process(server, client, comfy, log_file):
    from discomfort import Runtime
    from discomfort.serialization import CheckpointLocked

    folder = server.base_directory / "output" / "discomfort" / "checkpoints" / "held"
    prompt_id = client.queue(counter(8, "held", False, str(log_file), stall=0.3, prefix="held"))
    deadline = time.monotonic() + 60
    while not (folder / "state.json").exists():
        assert time.monotonic() < deadline, "the server's loop wrote no checkpoint"
        time.sleep(0.05)
    workflows = [Path(__file__).parent / "workflows" / name for name in ("start_image.json", "blur_step.json")]
    with Runtime() as runtime, pytest.raises(CheckpointLocked) as refused:
        runtime.run(workflows, iterations=2, checkpoint=folder)
    assert f"checkpoint folder {folder} is in use by loop 10 of prompt {prompt_id} (pid {server.process.pid}" in str(
        refused.value
    )
    run = client.wait(prompt_id)
    assert run.status == "success", run.messages[-3:]  # the server's run went on untouched
    assert json.loads((folder / "state.json").read_text())["iteration"] == 8
