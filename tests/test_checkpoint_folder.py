"""A checkpoint folder on its own: one run at a time, nothing in it trusted, nothing of someone else's deleted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from discomfort.serialization import Checkpoint, CheckpointError, CheckpointLocked, CheckpointMismatch, SigningKey


@pytest.fixture
def key(tmp_path):
    return SigningKey.load_or_create(tmp_path / "signing.key")


def committed(folder, key, iterations=2, fingerprint="body"):
    with Checkpoint(folder, fingerprint, ("frame",), key=key) as checkpoint:
        checkpoint.reset()
        frames = checkpoint.accumulation("frame")
        for i in range(iterations):
            frames.append(torch.full((1, 2, 2, 3), float(i)))
            checkpoint.save(i + 1, {"x": torch.full((2,), float(i))})
    return folder


def test_a_resume_reads_what_was_committed(tmp_path, key):
    with Checkpoint(committed(tmp_path / "run", key), "body", ("frame",), key=key) as checkpoint:
        state = checkpoint.load()
    assert state.iteration == 2 and torch.equal(state.values["x"], torch.full((2,), 1.0))
    assert [float(frame[0, 0, 0, 0]) for frame in state.accumulated["frame"]] == [0.0, 1.0]
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [".lock", "accumulated", "state.json",
                                                                          "values-2"]  # fmt: skip


def test_a_second_run_is_refused_naming_the_folder_and_its_holder(tmp_path, key):
    first = Checkpoint(tmp_path / "run", "body", key=key, holder="loop 10 of prompt abc")
    first.open()
    with pytest.raises(CheckpointLocked) as refused:
        Checkpoint(tmp_path / "run", "body", key=key).open()
    message = str(refused.value)
    assert f"checkpoint folder {tmp_path / 'run'} is in use by loop 10 of prompt abc (pid {os.getpid()}" in message
    first.close()
    with Checkpoint(tmp_path / "run", "body", key=key):  # free again
        pass


def test_a_killed_holder_does_not_block_the_folder(tmp_path, key):
    code = (
        "import sys, time\n"
        "from discomfort.serialization import Checkpoint, SigningKey\n"
        "held = Checkpoint(sys.argv[1], 'body', key=SigningKey.load_or_create(sys.argv[2]))\n"
        "held.open()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run"), str(tmp_path / "signing.key")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CheckpointLocked, match=f"pid {holder.pid}"):
            Checkpoint(tmp_path / "run", "body", key=key).open()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with Checkpoint(tmp_path / "run", "body", key=key):  # the kernel let the lock go with the process
        pass


def test_a_folder_of_other_files_is_refused_and_left_alone(tmp_path, key):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="is not empty and holds no checkpoint"):
        Checkpoint(tmp_path / "mine", "body", key=key).open()
    assert [path.name for path in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_an_edited_state_is_refused_and_its_paths_never_used(tmp_path, key):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    folder = committed(tmp_path / "run", key)
    state = json.loads((folder / "state.json").read_text())
    state.update(values="../precious", uids=[], iteration=1)
    (folder / "state.json").write_text(json.dumps(state))
    with Checkpoint(folder, "body", ("frame",), key=key) as checkpoint:
        with pytest.raises(CheckpointError, match=r"state.json was edited, or written by another installation"):
            checkpoint.load()
        checkpoint.reset()
        checkpoint.save(1, {"x": torch.ones(1)})
    assert (precious / "keep.txt").read_text() == "keep"


def test_a_state_signed_by_another_installation_is_refused(tmp_path, key):
    folder = committed(tmp_path / "run", SigningKey.load_or_create(tmp_path / "other.key"))
    with Checkpoint(folder, "body", key=key) as checkpoint, pytest.raises(CheckpointError, match="signature"):
        checkpoint.load()


def test_a_changed_body_is_refused(tmp_path, key):
    checkpoint = Checkpoint(committed(tmp_path / "run", key), "another body", key=key)
    with checkpoint, pytest.raises(CheckpointMismatch, match="holds a checkpoint of a different loop"):
        checkpoint.load()


def test_links_are_refused_rather_than_followed(tmp_path, key):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(CheckpointError, match="is a link"):
        Checkpoint(tmp_path / "link", "body", key=key).open()
    folder = committed(tmp_path / "run", key)
    (folder / "accumulated" / "elsewhere").symlink_to(outside)
    with pytest.raises(CheckpointError, match=r"holds a link \(.*elsewhere\)"):
        Checkpoint(folder, "body", key=key).open()
    assert (outside / "keep.txt").read_text() == "keep"
    (folder / "accumulated" / "elsewhere").unlink()
    with Checkpoint(folder, "body", key=key):  # the refusal let the folder go
        pass


def test_a_conditional_pipelines_path_and_uneven_accumulations_survive_a_resume(tmp_path, key):
    path = [("start.json",), *[("refine.json",)] * 3, ("a.json", "b.json")]
    with Checkpoint(tmp_path / "run", "body", ("frame", "score"), key=key) as checkpoint:
        checkpoint.reset()
        frames = checkpoint.accumulation("frame")
        for i in range(3):
            frames.append(torch.full((1, 2, 2, 3), float(i)))
        checkpoint.save(5, {"x": 1}, lengths={"frame": 3, "score": 0}, path=path, next=("upscale.json",),
                        plans={"refine.json": "f1", "a.json\nb.json": "f2"})  # fmt: skip
    state_file = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state_file["format"] == 3 and len(state_file["path"]) == 3  # repeats folded
    with Checkpoint(tmp_path / "run", "body", ("frame", "score"), key=key) as checkpoint:
        state = checkpoint.load()
    assert state.path == path and state.next == ("upscale.json",) and state.plans["a.json\nb.json"] == "f2"
    assert len(state.accumulated["frame"]) == 3 and len(state.accumulated["score"]) == 0


def test_a_format_2_state_still_resumes(tmp_path, key):
    folder = committed(tmp_path / "run", key)
    state = json.loads((folder / "state.json").read_text())
    for name in ("signature", "accumulated", "path", "next", "plans"):
        del state[name]
    state["format"] = 2
    state["signature"] = key.sign(json.dumps(state, sort_keys=True, separators=(",", ":")).encode())
    (folder / "state.json").write_text(json.dumps(state))
    with Checkpoint(folder, "body", ("frame",), key=key) as checkpoint:
        loaded = checkpoint.load()
    assert loaded.iteration == 2 and len(loaded.accumulated["frame"]) == 2 and loaded.path == [] and not loaded.next
