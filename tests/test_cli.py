"""The `discomfort` command run as a user runs it: a subprocess on the embedded ComfyUI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from graphs import assert_inverted
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "invert_through_port.api.json"


def discomfort(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "discomfort", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)  # fmt: skip


@pytest.mark.comfy
def test_run_writes_the_workflows_images(tmp_path):
    done = discomfort("run", str(EXAMPLE), "--output", str(tmp_path / "images"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (written,) = (tmp_path / "images").glob("discomfort_demo_*.png")
    assert done.stdout.strip() == str(written)
    with Image.open(written) as image:
        assert_inverted(image.convert("RGB").getpixel((0, 0)), 0x336699)


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
def test_the_readme_demo_refines_an_image_and_saves_every_iteration(tmp_path):
    demo = REPO / "examples" / "refine_loop.api.json"
    done = discomfort("run", str(demo), "--output", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    steps = sorted((tmp_path / "refine").glob("step_*.png"))
    (final,) = (tmp_path / "refine").glob("final_*.png")
    assert len(steps) == 8
    assert len(done.stdout.splitlines()) == 9
    last, result, first = (np.asarray(Image.open(path)) for path in (steps[-1], final, steps[0]))
    assert np.array_equal(last, result)  # the loop's result is its last iteration
    assert not np.array_equal(first, result)
