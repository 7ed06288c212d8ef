"""Storage settings: `auto`'s memory budget, and accumulated values kept after a run, read back by a later one."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from graphs import loop, node, port, save
from PIL import Image

from discomfort.serialization import SigningKey
from discomfort.serialization.kept import KeptError, keep, read_kept, read_manifest

BASE = 0x204080
COLORS = tuple(BASE + 8 * index for index in range(3))  # iteration i makes an image of BASE + 8 i


@pytest.fixture
def key(tmp_path):
    return SigningKey.load_or_create(tmp_path / "signing.key")


def test_kept_values_read_back_and_a_later_run_replaces_them(tmp_path, key):
    folder = tmp_path / "kept" / "run"
    frames = torch.rand(3, 4, 4, 3)
    keep(folder, {"frames": frames, "scores": [0.5, 0.25], "nothing": None}, iterations=3, path=[("a.json",)],
         key=key)  # fmt: skip
    back = read_kept(folder, key=key)
    assert torch.equal(back["frames"], frames) and back["scores"] == [0.5, 0.25] and back["nothing"] is None
    assert read_manifest(folder)["path"] == [["a.json"]] and read_manifest(folder)["iterations"] == 3
    keep(folder, {"frames": frames[:1]}, iterations=1, key=key)
    assert list(read_kept(folder, key=key)) == ["frames"] and len(read_kept(folder, key=key)["frames"]) == 1
    assert sorted(path.name for path in folder.parent.iterdir()) == ["run"]  # no staging folder left
    with pytest.raises(KeptError, match=r"keeps no uid 'scores' \(it keeps: frames\)"):
        read_kept(folder, uids=["scores"], key=key)


def test_a_folder_of_other_files_or_a_link_is_refused_and_left_alone(tmp_path, key):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "mine.png").write_bytes(b"not yours")
    with pytest.raises(KeptError, match="is not empty and holds no kept values"):
        keep(foreign, {"x": 1}, iterations=1, key=key)
    assert [path.name for path in foreign.iterdir()] == ["mine.png"]
    (tmp_path / "link").symlink_to(foreign)
    with pytest.raises(KeptError, match="is a link"):
        keep(tmp_path / "link", {"x": 1}, iterations=1, key=key)
    with pytest.raises(KeptError, match="holds no kept values"):
        read_kept(foreign, key=key)
    keep(tmp_path / "kept", {"x": 1}, iterations=1, key=key)
    (tmp_path / "kept" / "elsewhere").symlink_to(foreign / "mine.png")
    with pytest.raises(KeptError, match=r"holds a link \(elsewhere\)"):
        read_kept(tmp_path / "kept", key=key)


def colour_loop(keep_as: str = "", storage: str = "ram", budget_mb: int | None = None) -> dict:
    """Each iteration's index i becomes a 4x4 image of COLORS[i], accumulated as `frame`."""
    body_loop = loop(iterations=len(COLORS), accumulate="frame")
    body_loop["inputs"].update(keep=keep_as, storage=storage)
    if budget_mb is not None:
        body_loop["inputs"]["memory_budget_mb"] = budget_mb
    return {
        "1": port("iteration"),
        "5": node("DiscomfortTestAdd", a=["1", 0], b=["1", 0]),
        "6": node("DiscomfortTestAdd", a=["5", 0], b=["5", 0]),
        "7": node("DiscomfortTestAdd", a=["6", 0], b=["6", 0]),
        "2": node("DiscomfortTestAdd", a=["7", 0], b=BASE),  # BASE + 8 i
        "3": node("EmptyImage", width=4, height=4, batch_size=1, color=["2", 0]),
        "4": port("frame", ["3", 0]),
        "10": body_loop,
    }


def expected_frames() -> torch.Tensor:
    import nodes

    return torch.cat([nodes.EmptyImage().generate(4, 4, 1, color)[0] for color in COLORS])


@pytest.mark.comfy
@pytest.mark.parametrize(("budget_mb", "in_memory"), [(0, 0), (1, len(COLORS))])
def test_auto_storage_holds_values_in_memory_up_to_its_budget(comfy, loaded, budget_mb, in_memory):
    engine, plan, nested = (
        importlib.import_module(f"{loaded.discomfort.__name__}.executor.{name}")
        for name in ("engine", "plan", "nested")
    )  # the modules ComfyUI's loader imported
    prompt = colour_loop(storage="auto", budget_mb=budget_mb)
    body = plan.plan_loop(plan.prepare_prompt(prompt)["10"], "10")
    runner = nested.NestedRunner("10")
    settings = engine.LoopSettings(len(COLORS), accumulate=("frame",), storage="auto", memory_budget=budget_mb * 2**20)
    try:
        record = engine.run_loop(body, settings, runner)
        frames = record.accumulated["frame"]
        assert (len(frames.memory), len(frames.disk)) == (in_memory, len(COLORS) - in_memory)
        assert torch.equal(record.joined("frame"), expected_frames())
        record.close()
    finally:
        runner.close()


@pytest.mark.comfy
def test_a_kept_accumulation_is_read_back_after_the_run(server, client, comfy):
    output = server.base_directory / "output"
    run = client.run(colour_loop(keep_as="kept/colours", storage="disk"))
    assert run.status == "success", run.messages[-3:]
    kept = read_kept(output / "kept" / "colours")
    assert list(kept) == ["frame"] and torch.equal(kept["frame"], expected_frames())
    # A later prompt loads them back with the loader node.
    loaded = {"1": node("DiscomfortLoadKept", folder="kept/colours", uid="frame"),
              "2": save(["1", 0], "kept_back/frame")}  # fmt: skip
    run = client.run(loaded)
    assert run.status == "success", run.messages[-3:]
    saved = sorted((output / "kept_back").glob("frame_*.png"))
    assert [tuple(np.asarray(Image.open(path))[0, 0]) for path in saved] == [
        ((color >> 16) & 255, (color >> 8) & 255, color & 255) for color in COLORS
    ]


@pytest.mark.comfy
def test_kept_folders_stay_inside_the_output_folder_and_leave_other_files_alone(server, client):
    output = server.base_directory / "output"
    for name, message in (("../../escaped", "is outside"), ("/tmp/kept", "give a kept values folder name relative"),
                          ("kept\x00x", "keep 'kept\\x00x' holds a NUL character")):  # fmt: skip
        run = client.run(colour_loop(keep_as=name))
        (error,) = run.events("execution_error")
        assert message in error["exception_message"], error["exception_message"]
    (output / "photos").mkdir(exist_ok=True)
    (output / "photos" / "mine.png").write_bytes(b"someone's")
    run = client.run(colour_loop(keep_as="photos"))
    (error,) = run.events("execution_error")
    assert "is not empty and holds no kept values" in error["exception_message"]
    assert [path.name for path in (output / "photos").iterdir()] == ["mine.png"]
    missing = client.run({"1": node("DiscomfortLoadKept", folder="photos", uid="frame"), "2": save(["1", 0], "x")})
    (error,) = missing.events("execution_error")
    assert "node 1 (DiscomfortLoadKept)" in error["exception_message"]
    assert "holds no kept values" in error["exception_message"]
