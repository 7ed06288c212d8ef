"""One pipeline of two workflow files, looped five times through the node (over the server), the Python API and
the CLI: all three save the same images."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.comfy

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
FILES = ["start_image.json", "blur_step.json"]


def pixels(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(folder.glob("step_*.png"))]


def test_node_api_and_cli_give_the_same_images(server, client, comfy, tmp_path):
    workflows_dir = server.base_directory / "user" / "default" / "workflows"
    workflows_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(WORKFLOWS / name, workflows_dir / name)
    inputs = {"workflows": "\n".join(FILES), "iterations": 5, "uids": "image", "accumulate": "", "stop_when": ""}
    prompt = {"1": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs}}
    output = server.base_directory / "output" / "pipeline"
    shutil.rmtree(output, ignore_errors=True)
    run = client.run(prompt)
    assert run.status == "success", run.messages[-3:]
    through_node = pixels(output)

    import discomfort

    api_output, previous = tmp_path / "api", comfy.output_directory
    with discomfort.Runtime(output_directory=api_output) as rt:
        rt.run([WORKFLOWS / name for name in FILES], iterations=5)
    assert comfy.output_directory == previous  # the process's ComfyUI gets its own output folder back
    through_api = pixels(api_output / "pipeline")

    cli_output = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "discomfort", "run", *(str(WORKFLOWS / n) for n in FILES), "-n", "5",
                           "-o", str(cli_output)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    through_cli = pixels(cli_output / "pipeline")

    assert len(through_node) == len(through_api) == len(through_cli) == 5
    for node_image, api_image, cli_image in zip(through_node, through_api, through_cli, strict=True):
        assert np.array_equal(node_image, api_image) and np.array_equal(node_image, cli_image)
    assert not np.array_equal(through_node[0], through_node[-1])


def test_workflow_names_cannot_escape_the_workflows_folder(client):
    from comfy_client import PromptRejected

    prompt = {"1": {"class_type": "DiscomfortWorkflowLoop", "inputs": {
        "workflows": "../../secret.json", "iterations": 1, "uids": "", "accumulate": "", "stop_when": ""}}}  # fmt: skip
    try:
        run = client.run(prompt)
    except PromptRejected as error:  # pragma: no cover - validation does not know file names
        pytest.fail(f"rejected at validation: {error}")
    (error,) = run.events("execution_error")
    assert (
        "is outside" in error["exception_message"] and "a workflow file must be inside it" in error["exception_message"]
    )
