"""The Python API on the embedded ComfyUI: workflow files, stitched, looped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.comfy

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
PIPELINE = [WORKFLOWS / "start_image.json", WORKFLOWS / "blur_step.json"]


def test_a_stitched_pipeline_loops_and_saves_every_iteration(comfy):
    import discomfort

    seen = []
    with discomfort.Runtime() as rt:
        result = rt.run(
            PIPELINE,
            iterations=5,
            accumulate=["image"],
            progress=lambda done, total, values: seen.append((done, total)),
        )
    assert result.iterations == 5 and seen == [(i, 5) for i in range(1, 6)]
    assert result.values["image"].shape == (1, 32, 32, 3)
    assert result.accumulated["image"].shape == (5, 32, 32, 3)
    assert torch.equal(result.accumulated["image"][-1], result.values["image"][0])
    assert len(result.images) == 5 and all(image["subfolder"] == "pipeline" for image in result.images)
    # Each iteration blurs the previous one: the square's edge gets softer every time.
    edges = [float(result.accumulated["image"][i, 10, 6, 0]) for i in range(5)]
    assert edges == sorted(edges) and edges[0] < edges[-1]


def test_inputs_replace_what_the_pipeline_would_start_from(comfy):
    import discomfort

    white = torch.ones(1, 16, 16, 3)
    with discomfort.Runtime() as rt:
        result = rt.run(PIPELINE[1:], inputs={"image": white}, iterations=2)
    assert torch.allclose(result.values["image"], white)  # blurring a flat image changes nothing


def test_errors_name_the_file_and_the_node(comfy, tmp_path):
    import discomfort
    from discomfort.errors import WorkflowError

    broken = tmp_path / "unknown.json"
    broken.write_text('{"nodes": [{"id": 1, "type": "NoSuchNode"}], "links": []}')
    with discomfort.Runtime() as rt, pytest.raises(WorkflowError, match=r"unknown.json: .*node 1 \(NoSuchNode\)"):
        rt.run([broken])
