"""The `discomfort` command run as a user runs it: a subprocess on the embedded ComfyUI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from graphs import assert_inverted
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "api" / "invert_through_port.api.json"


def discomfort(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "discomfort", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)  # fmt: skip


@pytest.mark.comfy
def test_run_writes_the_workflows_images(tmp_path):
    done = discomfort("run", str(EXAMPLE), "--output", str(tmp_path / "images"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (written,) = (tmp_path / "images").glob("discomfort_demo_*.png")
    # The port is the uid's only one, fed and feeding: its entry and its exit, so the file gives `image` too.
    given = tmp_path / "images" / "image_00001.png"
    assert done.stdout.split() == [str(written), str(given)]
    with Image.open(written) as image:
        assert_inverted(image.convert("RGB").getpixel((0, 0)), 0x336699)
    with Image.open(given) as image:
        assert image.convert("RGB").getpixel((0, 0)) == (0x33, 0x66, 0x99)


def test_bad_workflow_file_exits_2_naming_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"1": {"class_type": ')
    done = discomfort("run", str(broken), cwd=tmp_path)
    assert done.returncode == 2
    assert "broken.json: not valid JSON (line 1" in done.stderr


def test_missing_comfyui_exits_3(tmp_path):
    done = subprocess.run([sys.executable, "-m", "discomfort", "run", str(EXAMPLE), "--comfyui", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 3
    assert "is not a ComfyUI folder" in done.stderr


@pytest.mark.comfy
def test_the_api_format_loop_example_refines_and_saves_every_iteration(tmp_path):
    demo = REPO / "docs" / "api" / "refine_loop.api.json"
    done = discomfort("run", str(demo), "--output", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    steps = sorted((tmp_path / "refine").glob("step_*.png"))
    (final,) = (tmp_path / "refine").glob("final_*.png")
    assert len(steps) == 8
    assert len(done.stdout.splitlines()) == 9
    last, result, first = (np.asarray(Image.open(path)) for path in (steps[-1], final, steps[0]))
    assert np.array_equal(last, result)  # the loop's result is its last iteration
    assert not np.array_equal(first, result)
    # The workflow runs once; the loop inside it says how far it went, with a bar of its own.
    assert "done: ran once" in done.stderr and "loop 10: 8 of 8 iteration(s), finished" in done.stderr
    assert "loop 10: 100%" in done.stderr


WORKFLOWS = REPO / "tests" / "workflows"


@pytest.mark.comfy
def test_run_a_stitched_pipeline_of_ui_files_n_times(tmp_path):
    done = discomfort("run", str(WORKFLOWS / "start_image.json"), str(WORKFLOWS / "blur_step.json"), "-n", "5",
                      "--accumulate", "image", "-o", str(tmp_path), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = sorted((tmp_path / "pipeline").glob("step_*.png"))
    ports = sorted(tmp_path.glob("image_*.png"))
    assert len(steps) == 5 and len(ports) == 5  # the workflow's saves, and the port's value every iteration
    assert np.array_equal(np.asarray(Image.open(steps[-1])), np.asarray(Image.open(ports[-1])))
    assert "done: 5 iteration(s)" in done.stderr and "ms/iteration" in done.stderr and "peak memory" in done.stderr


@pytest.mark.comfy
def test_ctrl_c_stops_a_long_run_keeping_its_finished_iterations_and_resume_goes_on(tmp_path):
    pipeline = [str(WORKFLOWS / "start_image.json"), str(WORKFLOWS / "blur_step.json")]
    checkpoint = tmp_path / "checkpoint"
    state = checkpoint / "state.json"
    process = subprocess.Popen([sys.executable, "-m", "discomfort", "run", *pipeline, "-n", "100000", "--checkpoint",
                                str(checkpoint), "-o", str(tmp_path / "images")], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (state.exists() and json.loads(state.read_text())["iteration"] >= 3):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint of 3 iterations within 240 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted; finished iterations are kept" in stderr
    finished = json.loads(state.read_text())["iteration"]
    assert 3 <= finished < 100000
    done = discomfort("run", *pipeline, "-n", str(finished + 2), "--checkpoint", str(checkpoint), "--resume",
                      "-o", str(tmp_path / "images"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(state.read_text())["iteration"] == finished + 2


@pytest.mark.comfy
def test_a_checkpoint_folder_of_other_files_is_refused_and_left_alone(tmp_path):
    folder = tmp_path / "my_project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    done = discomfort("run", str(EXAMPLE), "--checkpoint", str(folder), "-o", str(tmp_path / "images"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{folder} is not empty and holds no checkpoint" in done.stderr
    assert [path.name for path in folder.iterdir()] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.comfy
def test_input_image_file_feeds_the_entry_port(tmp_path):
    Image.new("RGB", (16, 8), (255, 255, 255)).save(tmp_path / "white.png")
    done = discomfort("run", str(WORKFLOWS / "blur_step.json"), "--input", f"image={tmp_path / 'white.png'}",
                      "-o", str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (port_image,) = (tmp_path / "out").glob("image_*.png")
    assert np.asarray(Image.open(port_image)).shape == (8, 16, 3)


def test_ports_lists_uids_modes_and_the_interface(tmp_path):
    done = discomfort("ports", str(WORKFLOWS / "blur_step.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:-2]}
    assert [row[1:4] for row in rows.values()] == [["image", "INPUT", "entry"], ["image", "OUTPUT", "exit"]]
    assert "takes: image" in done.stdout and "gives: image" in done.stdout


def test_stitch_writes_a_ui_workflow_that_reopens(tmp_path):
    target = tmp_path / "pipeline.json"
    done = discomfort("stitch", str(WORKFLOWS / "start_image.json"), str(WORKFLOWS / "blur_step.json"), "-o",
                      str(target), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    stitched = json.loads(target.read_text())
    assert len(stitched["nodes"]) == 8 and stitched["last_node_id"] == 8
    ports = discomfort("ports", str(target), cwd=tmp_path)
    assert ports.stdout.count("PASSTHRU") == 2


@pytest.mark.comfy
def test_convert_writes_an_api_prompt(tmp_path):
    target = tmp_path / "api.json"
    done = discomfort("convert", str(WORKFLOWS / "start_image.json"), "-o", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    prompt = json.loads(target.read_text())
    assert prompt["3"]["inputs"] == {"destination": ["1", 0], "source": ["2", 0], "x": 10, "y": 10,
                                     "resize_source": False}  # fmt: skip


@pytest.mark.comfy
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-n", "-3"], "iterations must be between 0 and 100000"),
        (["--until", "nothing"], "no OUTPUT port in body"),
        (["--input", "image"], "write it as UID=VALUE"),
        (["--input", "image=missing.png"], "no image file"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(tmp_path, arguments, message):
    done = discomfort("run", str(WORKFLOWS / "blur_step.json"), *arguments, "-o", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
