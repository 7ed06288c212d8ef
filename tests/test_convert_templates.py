"""UI -> API conversion of workflows saved by ComfyUI's real frontend: the templates ComfyUI ships."""

from __future__ import annotations

import asyncio
import json
import re
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfy

MISSING_MEDIA = re.compile(r"^(.*_name\d*|name|image|file|video|audio)$")
A_FILE = re.compile(r"\.(safetensors|sft|ckpt|pth?|bin|gguf|onnx|png|jpe?g|webp|gif|mp4|webm|mov|wav|mp3|flac"
                    r"|glb|gltf|fbx|obj|stl|ply|splat|ksplat|spz)\b", re.I)  # fmt: skip
# Templates saved against an older schema of one of their nodes: their widgets_values hold a value for a widget the
# node no longer has, so ComfyUI's own frontend reads them shifted too. They may fail; nothing else may.
OLDER_SCHEMA = {
    # MoonvalleyVideo2VideoNode dropped its prompt_adherence widget (ComfyUI 0.3.75 has no such input).
    "api_moonvalley_video_to_video_motion_transfer.json",
    "api_moonvalley_video_to_video_pose_control.json",
}


def templates() -> list[Path]:
    files = []
    # Where the JSON files live: the media packages up to 0.7 (ComfyUI 0.3.75), one json package since (0.33).
    for dist in ("comfyui-workflow-templates-media-image", "comfyui-workflow-templates-media-video",
                 "comfyui-workflow-templates-media-other", "comfyui-workflow-templates-media-api",
                 "comfyui-workflow-templates-json"):  # fmt: skip
        try:
            files += [Path(str(dist_file.locate())) for dist_file in metadata.files(dist) or []
                      if str(dist_file).endswith(".json") and "/templates/" in str(dist_file)]  # fmt: skip
        except metadata.PackageNotFoundError:
            continue
    return sorted(path for path in files if "schema" not in path.name)


def test_every_template_converts_and_validates_but_for_missing_models_and_media(comfy):
    """Right means: converted, and ComfyUI's validate_prompt finds nothing wrong but model files and input media
    this machine does not have. Templates that need node classes this ComfyUI lacks are counted apart."""
    import execution

    from discomfort.errors import WorkflowError
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    files = templates()
    assert len(files) > 100, "ComfyUI's workflow templates are not installed"
    defs, converted, right, subgraphed, problems = LiveNodeDefs(), 0, 0, 0, []
    for path in files:
        workflow = json.loads(path.read_text())
        if not isinstance(workflow, dict) or "nodes" not in workflow:
            continue
        try:
            prompt = ui_to_api(workflow, defs)
        except WorkflowError as error:
            # Templates of newer ComfyUI or of API nodes use node types this ComfyUI does not have.
            assert "unknown node types" in str(error), f"{path.name}: {error}"
            continue
        _, _, _, node_errors = asyncio.run(execution.validate_prompt(path.name, prompt, None))
        found = [f"{path.name} node {node_id} ({prompt[node_id]['class_type']}): {error['details']}"
                 for node_id, report in node_errors.items() for error in report["errors"]
                 if not _missing_file(error)]  # fmt: skip
        if path.name not in OLDER_SCHEMA:
            problems += found
        converted, right = converted + 1, right + (not found)
        subgraphed += bool((workflow.get("definitions") or {}).get("subgraphs"))
    print(f"\ntemplates whose nodes exist converted right: {right} of {converted}")
    assert not problems, "\n".join(problems)
    assert right >= 90 and subgraphed >= 5


def _missing_file(error: dict) -> bool:
    """A model file or an input file this machine does not have (a node's own check names the file)."""
    info = error.get("extra_info") or {}
    named = MISSING_MEDIA.match(info.get("input_name", "")) or A_FILE.search(str(info.get("received_value", "")))
    return error["type"] in ("value_not_in_list", "custom_validation_failed") and bool(
        named or (error["type"] == "custom_validation_failed" and A_FILE.search(str(error.get("details", ""))))
    )
