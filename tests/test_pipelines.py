"""Stitched pipelines compute what their files say, on every front: each file works on what the one before gave.

File a blurs `image`, file b inverts it: [a, b] on x must be invert(blur(x)), the same nodes applied in plain
Python, through the CLI (files and a file written by `discomfort stitch`), `Runtime.run_sequential`, `Runtime.run`
and the `DiscomfortWorkflowLoop` node over the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_client import shown_on
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

pytestmark = pytest.mark.comfy

BLUR = {"blur_radius": 3, "sigma": 1.5}
SHARPEN = {"sharpen_radius": 1, "sigma": 1.0, "alpha": 0.8}
WIDGETS = {"ImageBlur": ["blur_radius", "sigma"], "ImageSharpen": ["sharpen_radius", "sigma", "alpha"],
           "ImageInvert": []}  # fmt: skip


def ui_file(steps: list[tuple[str, dict]], uid: str = "image", middle_ports: tuple[int, ...] = ()) -> dict:
    """A UI workflow: INPUT port -> each step (a port of `uid` after the steps listed in middle_ports) -> OUTPUT."""
    nodes, links = [], []

    def add(kind: str, widgets: list, source: int | None, input_name: str) -> int:
        node_id = len(nodes) + 1
        inputs = []
        if source is not None:
            links.append([len(links) + 1, source, 0, node_id, 0, "IMAGE"])
            inputs.append({"name": input_name, "type": "*" if kind == "DiscomfortPort" else "IMAGE",
                           "link": len(links)})  # fmt: skip
        nodes.append({"id": node_id, "type": kind, "pos": [300 * node_id, 0], "size": [260, 100], "mode": 0,
                      "inputs": inputs, "outputs": [{"name": "value", "type": "*", "links": []}],
                      "widgets_values": widgets})  # fmt: skip
        return node_id

    previous = add("DiscomfortPort", [uid, ""], None, "value")
    for index, (kind, values) in enumerate(steps):
        previous = add(kind, [values[name] for name in WIDGETS[kind]], previous, "image")
        if index in middle_ports:
            previous = add("DiscomfortPort", [uid, ""], previous, "value")
    add("DiscomfortPort", [uid, ""], previous, "value")
    for link in links:
        nodes[link[1] - 1]["outputs"][0]["links"].append(link[0])
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}  # fmt: skip


def marker_file() -> dict:
    """A file that does not touch `image`: an EmptyImage through a port of its own uid, saved."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 7}},
            "2": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "mark", "tags": "", "value": ["1", 0]}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}  # fmt: skip


def direct(steps: list[tuple[str, dict]], image: torch.Tensor) -> torch.Tensor:
    """The steps applied by calling ComfyUI's node classes in plain Python."""
    import nodes

    for kind, values in steps:
        node_class = nodes.NODE_CLASS_MAPPINGS[kind]
        image = getattr(node_class(), node_class.FUNCTION)(image, **values)[0]
    return image


def as_png_pixels(image: torch.Tensor) -> np.ndarray:
    return np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """A 24x32 picture with detail for a blur to change, as a PNG and as ComfyUI loads it."""
    from discomfort.nodes.folder import load_image

    folder = tmp_path_factory.mktemp("start")
    ys, xs = np.mgrid[0:24, 0:32]
    pixels = np.stack([(xs * 8) % 256, (ys * 10) % 256, ((xs + ys) * 37) % 256], -1).astype(np.uint8)
    Image.fromarray(pixels).save(folder / "x.png")
    return folder / "x.png", load_image(folder / "x.png")[0]


A = [("ImageBlur", BLUR)]
B = [("ImageInvert", {})]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    written = {}
    for name, graph in {"a.json": ui_file(A), "b.json": ui_file(B), "m.json": marker_file(),
                        "c.json": ui_file([("ImageSharpen", SHARPEN)])}.items():  # fmt: skip
        written[name] = tmp_path / name
        written[name].write_text(json.dumps(graph))
    return written


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "discomfort", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)  # fmt: skip


def test_the_python_api_runs_each_file_on_what_the_one_before_gave(comfy, files, start):
    import discomfort

    _, x = start
    with discomfort.Runtime() as rt:
        once = rt.run_sequential([files["a.json"], files["b.json"]], {"image": x})
        twice = rt.run([files["a.json"], files["b.json"]], {"image": x}, iterations=2)
        chain = rt.run_sequential([files["a.json"], files["b.json"], files["c.json"]], {"image": x})
        middle = rt.run_sequential([files["a.json"], files["m.json"], files["b.json"]], {"image": x})
    expected = direct(A + B, x)
    assert not torch.allclose(expected, direct(B, x), atol=0.05)  # the blur matters: dropping a file would show
    assert torch.equal(once.values["image"], expected)
    assert torch.equal(twice.values["image"], direct(A + B + A + B, x))
    assert torch.equal(chain.values["image"], direct(A + B + [("ImageSharpen", SHARPEN)], x))
    assert torch.equal(middle.values["image"], expected) and set(middle.values) == {"image", "mark"}


def test_the_cli_runs_files_and_a_stitched_file_alike(comfy, files, start, tmp_path):
    photo, x = start
    expected = as_png_pixels(direct(A + B, x))
    done = cli("run", str(files["a.json"]), str(files["b.json"]), "--input", f"image={photo}", "-o",
               str(tmp_path / "files"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "files" / "image_00001.png")), expected)
    stitched = tmp_path / "ab.json"
    done = cli("stitch", str(files["a.json"]), str(files["b.json"]), "-o", str(stitched), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = cli("run", str(stitched), "--input", f"image={photo}", "-o", str(tmp_path / "stitched"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "stitched" / "image_00001.png")), expected)


def test_the_workflow_loop_node_runs_each_file_on_what_the_one_before_gave(server, client, comfy, files, start):
    photo, x = start
    workflows = server.base_directory / "user" / "default" / "workflows" / "chains"
    workflows.mkdir(parents=True, exist_ok=True)
    for name in ("a.json", "b.json"):
        (workflows / name).write_text(files[name].read_text())
    (server.base_directory / "input" / "chain_x.png").write_bytes(photo.read_bytes())
    inputs = {"workflows": "chains/a.json\nchains/b.json", "iterations": 1, "uids": "image", "accumulate": "",
              "stop_when": "", "value_1": ["1", 0]}  # fmt: skip
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "chain_x.png"}},
        "2": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "chains/ab"}},
    }
    run = client.run(prompt)
    assert run.status == "success", run.messages[-3:]
    (saved,) = (server.base_directory / "output" / "chains").glob("ab_*.png")
    assert np.array_equal(np.asarray(Image.open(saved)), as_png_pixels(direct(A + B, x)))


def test_what_a_workflow_files_nodes_show_lands_on_the_loop_node_not_on_a_node_sharing_an_id(server, client,
                                                                                             files):  # fmt: skip
    workflows = server.base_directory / "user" / "default" / "workflows" / "chains"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / "marker.json").write_text(files["m.json"].read_text())  # its PreviewImage is node 3
    inputs = {"workflows": "chains/marker.json", "iterations": 2, "uids": "mark", "accumulate": "", "stop_when": ""}
    prompt = {
        "2": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "chains/marked"}},
    }
    run = client.run(prompt)
    assert run.status == "success", run.messages[-3:]
    on_3 = [data["output"] for data in run.events("executed") if shown_on(data) == "3"]
    assert [[image["type"] for image in output["images"]] for output in on_3] == [["output"]]  # its own save only
    history = [(run.history["meta"][node_id]["display_node"], output) for node_id, output in run.outputs().items()]
    on_loop = [image for node, output in history if node == "2" for image in output.get("images", [])]
    names = [image["filename"] for image in on_loop]
    assert any(name.startswith("ComfyUI_temp") for name in names), names  # the file's preview
    assert any(name.startswith("discomfort_loop_2") for name in names), names  # the loop's, kept beside it
    last = [data["output"] for data in run.events("executed") if shown_on(data) == "2"][-1]
    assert [image["filename"] for image in last["images"]] == names  # the canvas ends showing both
    assert [node for node, _ in history].count("3") == 1


STEPS = st.lists(st.sampled_from([("ImageBlur", {"blur_radius": 1, "sigma": 0.7}), ("ImageInvert", {}),
                                  ("ImageSharpen", SHARPEN)]), min_size=1, max_size=3)  # fmt: skip


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(STEPS, st.sets(st.integers(0, 2))), min_size=1, max_size=3), st.integers(1, 2))
def test_random_chains_of_files_equal_their_nodes_applied_in_order(comfy, start, tmp_path, chain, iterations):
    import discomfort

    _, x = start
    paths = []
    for index, (steps, middle) in enumerate(chain):
        paths.append(tmp_path / f"chain_{index}.json")
        paths[-1].write_text(json.dumps(ui_file(steps, middle_ports=tuple(middle))))
    with discomfort.Runtime() as rt:
        result = rt.run(paths, {"image": x}, iterations=iterations)
    every = [step for steps, _ in chain for step in steps]
    assert torch.equal(result.values["image"], direct(every * iterations, x))
