"""Every example workflow, converted and run through the real server and through the CLI, outputs checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from comfy_client import shown_on
from PIL import Image

pytestmark = pytest.mark.comfy

EXAMPLES = Path(__file__).resolve().parent.parent / "example_workflows"


def make_folder(root: Path) -> list[str]:
    folder = root / "discomfort_examples" / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["a1.png", "a2.png", "a10.png"]
    for index, name in enumerate(names):
        Image.new("RGB", (12, 8), (index * 40, 100, 200)).save(folder / name)
    return names


def frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def check_refine(output: Path) -> None:
    steps = sorted((output / "refine").glob("step_*.png"))
    (final,) = (output / "refine").glob("final_*.png")
    assert 2 <= len(steps) <= 40
    assert np.array_equal(np.asarray(Image.open(steps[-1])), np.asarray(Image.open(final)))


def check_folder(output: Path, names: list[str]) -> None:
    saved = sorted(path.name for path in (output / "folder_example").iterdir())
    assert saved == sorted(Path(name).stem + ".png" for name in names)
    pixel = np.asarray(Image.open(output / "folder_example" / "a2.png"))[0, 0]
    # (40, 100, 200) inverted, each channel within one step of float32 round trips and truncation
    assert all(abs(int(got) - want) <= 1 for got, want in zip(pixel, (215, 155, 55), strict=True))


def check_video(output: Path) -> None:
    (video,) = (output / "video").glob("chunks_*.mp4")
    assert frames(video) == 5 * 16 - 4 * 4


STATES = [f"refine_then_upscale_{part}.json" for part in ("1_start", "2_refine", "3_upscale")]


def check_states(output: Path) -> int:
    """The state machine refined a few times, then upscaled the last step once; returns how many refinements."""
    steps = sorted((output / "refine_then_upscale").glob("step_*.png"))
    (final,) = (output / "refine_then_upscale").glob("final_*.png")
    assert 2 <= len(steps) < 19
    last = Image.open(steps[-1])
    assert Image.open(final).size == (2 * last.width, 2 * last.height)
    return len(steps)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "discomfort", "run", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)  # fmt: skip


def test_examples_through_the_cli(tmp_path):
    names = make_folder(tmp_path / "input")
    for example in ("refine_until_settled", "folder_one_at_a_time", "video_in_chunks"):
        done = cli(str(EXAMPLES / f"{example}.json"), "-o", str(tmp_path / "out"), "--input-dir",
                   str(tmp_path / "input"), cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, f"{example}: {done.stderr}"
    check_refine(tmp_path / "out")
    check_folder(tmp_path / "out", names)
    check_video(tmp_path / "out")
    done = cli(str(EXAMPLES / "pipeline_1_start.json"), str(EXAMPLES / "pipeline_2_refine.json"), "-n", "5",
               "-o", str(tmp_path / "pipe"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "pipe" / "pipeline").glob("step_*.png"))) == 5
    # The state machine, from its first file: the names next gives are found beside it.
    done = cli(str(EXAMPLES / STATES[0]), "-n", "20", "-o", str(tmp_path / "states"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    refinements = check_states(tmp_path / "states")
    assert f"path: {STATES[0]}, {STATES[1]} (x{refinements}), {STATES[2]}" in done.stderr


def test_examples_through_the_server(server, client, comfy):
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    names = make_folder(server.base_directory / "input")
    output = server.base_directory / "output"
    for example in ("refine_until_settled", "folder_one_at_a_time", "video_in_chunks"):
        prompt = ui_to_api(json.loads((EXAMPLES / f"{example}.json").read_text()), LiveNodeDefs())
        run = client.run(prompt, timeout=300)
        assert run.status == "success", f"{example}: {run.messages[-3:]}"
    check_refine(output)
    check_folder(output, names)
    check_video(output)
    # The folder loop resumes from start_index: only the files from there on are done again.
    prompt = ui_to_api(json.loads((EXAMPLES / "folder_one_at_a_time.json").read_text()), LiveNodeDefs())
    loop_id = next(i for i, n in prompt.items() if n["class_type"] == "DiscomfortFolderLoop")
    prompt[loop_id]["inputs"]["start_index"] = 2
    for path in (output / "folder_example").iterdir():
        path.unlink()
    assert client.run(prompt).status == "success"
    assert [p.name for p in (output / "folder_example").iterdir()] == ["a10.png"]
    # The two-file pipeline, looped by the workflow-loop node from the user workflows folder.
    workflows = server.base_directory / "user" / "default" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline_1_start.json", "pipeline_2_refine.json"):
        (workflows / name).write_text((EXAMPLES / name).read_text())
    shutil.rmtree(output / "pipeline", ignore_errors=True)
    inputs = {"workflows": "pipeline_1_start.json\npipeline_2_refine.json", "iterations": 5, "uids": "image",
              "accumulate": "", "stop_when": ""}  # fmt: skip
    assert client.run({"1": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs}}).status == "success"
    assert len(list((output / "pipeline").glob("step_*.png"))) == 5
    # The state machine, from the workflows folder as a user copies it there.
    for name in STATES:
        (workflows / name).write_text((EXAMPLES / name).read_text())
    shutil.rmtree(output / "refine_then_upscale", ignore_errors=True)
    inputs = {"workflows": STATES[0], "iterations": 20, "uids": "image", "accumulate": "", "stop_when": ""}
    assert client.run({"1": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs}}).status == "success"
    check_states(output)


def test_previews_on_the_exits_show_every_iteration_and_the_loop_still_settles(server, client, comfy):
    """What every user does to look at a value: a preview linked to each exit of the refinement example."""
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    workflow = json.loads((EXAMPLES / "refine_until_settled.json").read_text())
    by_id = {node["id"]: node for node in workflow["nodes"]}
    image_exit = next(n for n in workflow["nodes"] if n.get("title") == "image leaves")
    settled_exit = next(n for n in workflow["nodes"] if n.get("title") == "settled (stop)")
    saver = next(n for n in workflow["nodes"] if n["type"] == "SaveImage" and "step" in n["widgets_values"][0])
    saver["widgets_values"][0] = "previewed/step"
    for node_id, kind, socket, exit_node, kind_name in (
        (90, "PreviewImage", "images", image_exit, "IMAGE"),
        (91, "PreviewAny", "source", settled_exit, "BOOLEAN"),
    ):
        link_id = workflow["last_link_id"] = workflow["last_link_id"] + 1
        workflow["links"].append([link_id, exit_node["id"], 0, node_id, 0, kind_name])
        by_id[exit_node["id"]]["outputs"][0]["links"].append(link_id)
        workflow["nodes"].append({"id": node_id, "type": kind, "pos": [0, 900], "size": [200, 200], "mode": 0,
                                  "inputs": [{"name": socket, "type": kind_name, "link": link_id}], "outputs": [],
                                  "widgets_values": []})  # fmt: skip
    prompt = ui_to_api(workflow, LiveNodeDefs())
    run = client.run(prompt, timeout=300)
    assert run.status == "success", run.messages[-3:]
    steps = sorted((server.base_directory / "output" / "previewed").glob("step_*.png"))
    assert 2 <= len(steps) < 40  # settled before the iteration count
    # Each preview showed every iteration as it came, and the history keeps them all under that node.
    *previews, every = [data["output"] for data in run.events("executed") if shown_on(data) == "90"]
    assert len(previews) == len(steps) and all(len(output["images"]) == 1 for output in previews)
    assert len(every["images"]) == len(steps)  # at the end, all of them
    *texts, all_texts = [data["output"]["text"] for data in run.events("executed") if shown_on(data) == "91"]
    assert texts == [["False"]] * (len(steps) - 1) + [["True"]] and all_texts == ["False"] * (len(steps) - 1) + ["True"]
    shown = {run.history["meta"][node_id]["display_node"]: output for node_id, output in run.outputs().items()}
    assert len(shown["90"]["images"]) == len(steps) and shown["91"]["text"] == ["False"] * (len(steps) - 1) + ["True"]
