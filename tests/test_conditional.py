"""Conditional pipelines: workflow files that name the next file to run through a `next` port.

The example state machine (example_workflows/refine_then_upscale_*.json) blurs an image until it settles, then
upscales it once. Its path and its pixels are checked against the same nodes applied in plain Python, through the
Python API, a session deciding in code, and the DiscomfortWorkflowLoop node over the server (a resume mid-path
included); smaller files check what carries across a switch, what is planned and loaded once, and the errors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.comfy

EXAMPLES = Path(__file__).resolve().parent.parent / "example_workflows"
START, REFINE, UPSCALE = (f"refine_then_upscale_{part}.json" for part in ("1_start", "2_refine", "3_upscale"))


def outputs(kind: str, *args, **kwargs) -> tuple:
    """A node's outputs, its class called in plain Python."""
    import nodes

    node_class = nodes.NODE_CLASS_MAPPINGS[kind]
    return tuple(getattr(node_class(), node_class.FUNCTION)(*args, **kwargs))


def call(kind: str, *args, **kwargs):
    return outputs(kind, *args, **kwargs)[0]


def expected() -> tuple[list[str], list[torch.Tensor], torch.Tensor]:
    """The example's path, every refinement step, and the final image, by its nodes called one after the other."""
    background = call("EmptyImage", 96, 96, 1, 0x202040)
    square = call("EmptyImage", 32, 32, 1, 0xFFD040)
    image = call("ImageCompositeMasked", background, square, 32, 32, False)
    path, steps = [START], []
    while True:
        blurred = call("ImageBlur", image, 2, 1.0)
        path.append(REFINE)
        steps.append(blurred)
        _, settled = outputs("DiscomfortImageDifference", image, blurred, 0.002)
        image = blurred
        if settled:
            break
    path.append(UPSCALE)
    return path, steps, call("ImageScaleBy", image, "bilinear", 2.0)


def png(image: torch.Tensor) -> np.ndarray:
    return np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8)


def test_the_example_refines_until_settled_then_upscales_once(comfy, tmp_path):
    import discomfort

    path, steps, final = expected()
    assert 2 < len(steps) < 20  # the measure decides: more than one refinement, fewer than the cap
    with discomfort.Runtime(output_directory=tmp_path) as rt:
        result = rt.run([EXAMPLES / START], iterations=20)
    assert result.path == path and result.iterations == len(path) and result.stopped_early
    assert torch.equal(result.values["image"], final) and result.values["image"].shape[1:3] == (192, 192)
    saved = sorted((tmp_path / "refine_then_upscale").glob("step_*.png"))
    assert [np.asarray(Image.open(file)).tolist() for file in saved] == [png(step).tolist() for step in steps]
    (last,) = (tmp_path / "refine_then_upscale").glob("final_*.png")
    assert np.array_equal(np.asarray(Image.open(last)), png(final))


def test_a_session_decides_the_next_file_in_code_on_the_same_caches(comfy, tmp_path, monkeypatch):
    import execution

    import discomfort
    from discomfort.errors import SettingsError

    validations = []
    real_validate = execution.validate_prompt

    async def counting(*args, **kwargs):
        validations.append(1)
        return await real_validate(*args, **kwargs)

    monkeypatch.setattr(execution, "validate_prompt", counting)
    path, _, final = expected()
    with discomfort.Runtime(output_directory=tmp_path) as rt:
        with rt.session() as s:
            s.run(EXAMPLES / START)
            while s.run(EXAMPLES / REFINE).values["next"] != UPSCALE:  # here, the file's own judgement
                pass
            result = s.run(EXAMPLES / UPSCALE)
            assert s.path == path and torch.equal(result.values["image"], final)
            assert "next" in s.values  # what the files gave, by uid, the next one included
        assert len(validations) == 3, "a file the session ran again was validated again"
        with rt.session() as fresh, pytest.raises(SettingsError, match=rf"{REFINE} takes uid 'image', which no "
                                                  "earlier run of this session gave"):  # fmt: skip
            fresh.run(EXAMPLES / REFINE)


def port(uid: str, value: list | None = None) -> dict:
    inputs = {"unique_id": uid, "tags": ""}
    if value is not None:
        inputs["value"] = value
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def text(value) -> dict:
    kind = "PrimitiveString" if isinstance(value, str) else "PrimitiveInt"
    return {"class_type": kind, "inputs": {"value": value}}


def write(folder: Path, name: str, prompt: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(prompt))
    return folder / name


def test_each_file_is_planned_once_and_keeps_its_models_loaded_across_switches(comfy, tmp_path, monkeypatch):
    import discomfort
    import discomfort.executor.pipeline as pipeline

    log = tmp_path / "loads.log"
    log.touch()
    a = {"1": port("x"), "2": {"class_type": "DiscomfortTestLoader", "inputs": {"level": 0.25, "log": str(log)}},
         "3": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["2", 0], "blend_factor": 0.5,
                                                      "blend_mode": "normal"}},
         "4": port("x", ["3", 0]), "5": text("b.json"), "6": port("next", ["5", 0])}  # fmt: skip
    b = {"1": port("x"), "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}, "3": port("x", ["2", 0]),
         "4": text("a.json"), "5": port("next", ["4", 0])}  # fmt: skip
    files = tmp_path / "states"
    write(files, "a.json", a)
    write(files, "b.json", b)
    planned = []
    real_plan = pipeline.plan_pipeline
    monkeypatch.setattr(pipeline, "plan_pipeline", lambda graphs, names: planned.append(list(names)) or real_plan(
        graphs, names))  # fmt: skip
    x = torch.zeros(1, 8, 8, 3)
    with discomfort.Runtime() as rt:
        result = rt.run([files / "a.json"], {"x": x}, iterations=5, accumulate=["x"])
    assert result.path == ["a.json", "b.json", "a.json", "b.json", "a.json"]
    assert log.read_text().splitlines() == ["load"], "switching files loaded a file's models again"
    assert planned == [["a.json"], ["b.json"]], "a file was planned again"
    value = x
    for step in range(5):
        value = 1.0 - value if step % 2 else (value + 0.25) / 2  # blend and invert, as each file does
        assert torch.allclose(result.accumulated["x"][step], value[0], atol=1e-6)


@pytest.mark.parametrize(("following", "message"), [
    (text("needs.json"), "iteration 2/3: needs.json takes uid 'mask', which nothing gave yet"),
    (text("../outside.json"), "is outside"),
    (text("missing.json"), "the workflow(s) next named (missing.json) cannot run: "),
    (text(7), "iteration 1/3: next gave a int (7)"),
])  # fmt: skip
def test_errors_name_the_file_the_uid_and_the_iteration(comfy, tmp_path, following, message):
    import discomfort
    from discomfort.errors import LoopError

    files = tmp_path / "states"
    start = write(files, "start.json", {"1": port("x"), "2": port("x", ["1", 0]), "3": following,
                                        "4": port("next", ["3", 0])})  # fmt: skip
    write(files, "needs.json", {"1": port("mask"), "2": port("mask", ["1", 0])})
    write(tmp_path, "outside.json", {"1": port("x"), "2": port("x", ["1", 0])})
    with discomfort.Runtime() as rt, pytest.raises(LoopError) as caught:
        rt.run([start], {"x": 1}, iterations=3)
    assert message in str(caught.value)
    finished = 0 if "iteration 1/" in message else 1  # the failing iteration is not one of them
    assert caught.value.record.iterations == finished


def test_a_pipeline_given_as_a_dict_needs_a_folder_for_the_names_next_gives(comfy, tmp_path):
    import discomfort
    from discomfort.errors import LoopError

    start = {"1": port("x"), "2": port("x", ["1", 0]), "3": text("b.json"), "4": port("next", ["3", 0])}
    write(tmp_path, "b.json", {"1": port("x"), "2": {"class_type": "DiscomfortTestAdd", "inputs": {"a": ["1", 0],
                                                                                                  "b": 10}},
                               "3": port("x", ["2", 0])})  # fmt: skip
    with discomfort.Runtime() as rt:
        with pytest.raises(LoopError, match=r"was given as a dict, so there is no folder to find b\.json in"):
            rt.run(start, {"x": 1}, iterations=3)
        result = rt.run(start, {"x": 1}, iterations=3, workflows_folder=tmp_path)
    assert result.path == ["workflow", "b.json"] and result.values["x"] == 11  # b.json gives no next: it ends


def server_files(server, prefix: str, fail_after: int | None = None, flag: Path | None = None) -> None:
    """The example's three files in the server's workflows folder, as API prompts named `<prefix>_<file>`, `next`
    naming them so; with `fail_after`, the refinement fails at that iteration (before it blurs) while `flag`
    exists."""
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    names = {name: f"{prefix}_{name}" for name in (START, REFINE, UPSCALE)}
    folder = server.base_directory / "user" / "default" / "workflows"
    for name, renamed in names.items():
        prompt = ui_to_api(json.loads((EXAMPLES / name).read_text()), LiveNodeDefs())
        for node in prompt.values():
            inputs = node["inputs"]
            for key in ("value", "if_true", "if_false"):
                if isinstance(inputs.get(key), str) and inputs[key] in names:
                    inputs[key] = names[inputs[key]]
            if node["class_type"] == "SaveImage":
                inputs["filename_prefix"] = inputs["filename_prefix"].replace("refine_then_upscale", prefix)
        if name == REFINE and fail_after is not None:
            blur = next(node for node in prompt.values() if node["class_type"] == "ImageBlur")
            prompt["90"] = port("iteration")
            prompt["91"] = {"class_type": "DiscomfortTestFailAt", "inputs": {
                "value": blur["inputs"]["image"], "index": ["90", 0], "fail_at": fail_after,
                "only_if_exists": str(flag)}}  # fmt: skip
            blur["inputs"]["image"] = ["91", 0]
        write(folder, renamed, prompt)


def workflow_loop(first: str, **settings) -> dict:
    from discomfort.executor.loop_node import DiscomfortWorkflowLoop

    inputs = {"workflows": first, "iterations": 20, "uids": "image", "accumulate": "", "stop_when": "", **settings}
    return {"1": {"class_type": "DiscomfortWorkflowLoop", "inputs": inputs},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "states/final"}},
            "3": {"class_type": "PreviewAny",
                  "inputs": {"source": ["1", DiscomfortWorkflowLoop.RETURN_NAMES.index("path")]}}}  # fmt: skip


def test_the_workflow_loop_node_takes_the_path_the_files_choose(server, client, comfy):
    path, _, final = expected()
    server_files(server, "node")
    shutil.rmtree(server.base_directory / "output" / "states", ignore_errors=True)
    run = client.run(workflow_loop(f"node_{START}"))
    assert run.status == "success", run.messages[-3:]
    assert run.outputs()["3"]["text"] == ["\n".join(f"node_{name}" for name in path)]
    (saved,) = (server.base_directory / "output" / "states").glob("final_*.png")
    assert np.array_equal(np.asarray(Image.open(saved)), png(final))
    (finished,) = [data for data in run.events("discomfort.loop") if data["state"] != "running"]
    assert finished["state"] == "settled" and finished["iteration"] == len(path)


def test_a_resume_continues_mid_path_in_the_file_it_was_about_to_run(server, client, comfy, tmp_path):
    path, steps, final = expected()
    flag = tmp_path / "fail"
    flag.touch()
    server_files(server, "resume", fail_after=3, flag=flag)
    output = server.base_directory / "output"
    for folder in ("resume", "states"):
        shutil.rmtree(output / folder, ignore_errors=True)
    run = client.run(workflow_loop(f"resume_{START}", checkpoint="states_resume"))
    (error,) = run.events("execution_error")
    assert "iteration 4/20" in error["exception_message"] and "planted failure at index 3" in error["exception_message"]
    assert len(list((output / "resume").glob("step_*.png"))) == 2  # iterations 2 and 3 refined
    flag.unlink()
    run = client.run(workflow_loop(f"resume_{START}", checkpoint="states_resume", resume=True))
    assert run.status == "success", run.messages[-3:]
    assert run.outputs()["3"]["text"] == ["\n".join(f"resume_{name}" for name in path)]
    saved = sorted((output / "resume").glob("step_*.png"))
    assert [np.asarray(Image.open(file)).tolist() for file in saved] == [png(step).tolist() for step in steps]
    (last,) = (output / "states").glob("final_*.png")
    assert np.array_equal(np.asarray(Image.open(last)), png(final))


def test_next_names_stay_inside_the_workflows_folder(server, client, tmp_path):
    folder = server.base_directory / "user" / "default" / "workflows"
    write(folder, "escape_start.json", {"1": port("x"), "2": port("x", ["1", 0]), "3": text("../../secret.json"),
                                        "4": port("next", ["3", 0])})  # fmt: skip
    (server.base_directory / "user" / "secret.json").write_text(json.dumps({"1": port("x"), "2": port("x", ["1", 0])}))
    run = client.run({"1": {"class_type": "DiscomfortWorkflowLoop", "inputs": {
        "workflows": "escape_start.json", "iterations": 3, "uids": "x", "accumulate": "", "stop_when": "",
        "value_1": ["2", 0]}}, "2": {"class_type": "PrimitiveInt", "inputs": {"value": 1}}})  # fmt: skip
    (error,) = run.events("execution_error")
    assert "iteration 2/3" in error["exception_message"]
    assert "is outside" in error["exception_message"] and "a workflow file must be inside it" in error[
        "exception_message"]  # fmt: skip
