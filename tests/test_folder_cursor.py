"""The folder loop's cursor: `continue` picks up after the last file the previous prompt finished, starts over
when the folder's files change; `reset` starts over; `start_index` wins over both. Over a real server, and the
cursor on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphs import node, port
from PIL import Image

from discomfort.nodes.cursor import FolderCursor


def files(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()
    return [folder / name for name in names]


def test_a_cursor_continues_where_it_was_left_and_starts_over_when_the_files_change(tmp_path):
    root, folder = tmp_path / "cursors", tmp_path / "photos"
    listed = files(folder, ["a.png", "b.png", "c.png"])
    cursor = FolderCursor(root, folder, "loop 10:body", listed)
    assert cursor.start().index == 0 and "no earlier run" in cursor.start().why
    cursor.advance(2)
    again = FolderCursor(root, folder, "loop 10:body", listed)
    assert again.start().index == 2 and again.start().why == "continued after file 2 of 3"
    assert FolderCursor(root, folder, "loop 11:body", listed).start().index == 0  # another workflow's own
    assert FolderCursor(root, tmp_path / "other", "loop 10:body", listed).start().index == 0  # another folder's
    changed = FolderCursor(root, folder, "loop 10:body", [*listed, folder / "d.png"])
    assert changed.start().index == 0 and "files changed" in changed.start().why
    # Its file's name is derived, never given; an unreadable one starts over.
    (written,) = root.iterdir()
    assert written.name == again.path.name and len(written.stem) == 32 and not list(root.glob(".*.tmp"))
    written.write_text('{"format": 1, "next_index": "../../etc"}')
    assert again.start().index == 0 and "could not be read" in again.start().why
    written.write_text(json.dumps({"format": 1, "listing": again.listing, "next_index": 99}))
    assert again.start().index == 3  # never past the last file


FOLDER = "cursor_photos"
NAMES = ["p1.png", "p2.png", "p3.png", "p4.png", "p5.png"]


def cursor_loop(cursor: str, flag: Path, start_index: int = 0) -> dict:
    """For each file, an image as wide as the folder has files, saved under the file's basename; the file at index 2
    fails while `flag` exists."""
    return {
        "2": port("basename"), "3": port("index"), "4": port("total"),
        "5": node("DiscomfortTestFailAt", value=["4", 0], index=["3", 0], fail_at=2, only_if_exists=str(flag)),
        "6": node("EmptyImage", width=["5", 0], height=4, batch_size=1, color=0),
        "7": node("StringConcatenate", string_a=["2", 0], string_b="_of_", delimiter=""),
        "9": node("SaveImage", images=["6", 0], filename_prefix=["7", 0]),
        "10": {"class_type": "DiscomfortFolderLoop", "inputs": {
            "folder": FOLDER, "filter": "images", "custom_pattern": "", "body": "loop", "start_index": start_index,
            "on_error": "stop", "cursor": cursor}},
        "11": node("PreviewAny", source=["10", 0]), "12": node("PreviewAny", source=["10", 4]),
        "13": node("PreviewAny", source=["10", 5]),
    }  # fmt: skip


def saved(output: Path, total: int | None = None) -> list[str]:
    """The basenames saved since the last call (forgotten then), each image `total` wide."""
    found = sorted(output.glob("*_of__*.png"))
    for path in found:
        with Image.open(path) as image:
            assert total is None or image.width == total
        path.unlink()
    return [path.name.split("_of_")[0] for path in found]


@pytest.mark.comfy
def test_continue_picks_up_where_the_last_prompt_stopped_and_reset_starts_over(server, client, tmp_path):
    folder = server.base_directory / "input" / FOLDER
    for index, name in enumerate(NAMES):
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (index * 40, 0, 0)).save(folder / name)
    output = server.base_directory / "output"
    saved(output)
    cursors = server.base_directory / "user" / "discomfort" / "cursors"
    others = set(cursors.glob("*.json"))  # other tests' folder loops on the shared server
    flag = tmp_path / "fail"
    flag.touch()

    def run(cursor: str, start_index: int = 0) -> dict:
        result = client.run(cursor_loop(cursor, flag, start_index))
        assert result.status == "success", result.messages[-3:]
        status = json.loads(result.outputs()["11"]["text"][0])
        return {**status, "last_file": result.outputs()["12"]["text"][0], "count": result.outputs()["13"]["text"][0]}

    # The first prompt stops at the third file; the second, queued with continue, starts there.
    failed = client.run(cursor_loop("continue", flag))
    (error,) = failed.events("execution_error")
    assert "iteration 3/5: " in error["exception_message"]
    assert saved(output) == ["p1", "p2"]
    flag.unlink()
    second = run("continue")
    assert saved(output, total=5) == ["p3", "p4", "p5"]
    assert second["start"] == 2 and second["cursor"] == "continued after file 2 of 5" and second["processed"] == 3
    assert second["last_file"] == "p5.png" and second["count"] == "5"
    # Everything is done: continue has nothing left; reset starts over; start_index wins.
    assert run("continue")["processed"] == 0 and saved(output) == []
    assert run("reset")["processed"] == 5 and saved(output) == NAMES_STEMS
    assert run("continue", start_index=3)["start"] == 3 and saved(output) == ["p4", "p5"]
    # A folder whose files changed starts over by itself.
    Image.new("RGB", (4, 4), (0, 200, 0)).save(folder / "p6.png")
    changed = run("continue")
    assert changed["start"] == 0 and "files changed" in changed["cursor"]
    assert saved(output, total=6) == [*NAMES_STEMS, "p6"] and changed["count"] == "6"
    (cursor,) = set(cursors.glob("*.json")) - others  # one for this folder and workflow
    assert json.loads(cursor.read_text())["next_index"] == 6


NAMES_STEMS = [Path(name).stem for name in NAMES]
