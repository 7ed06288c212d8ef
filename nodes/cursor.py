"""Where a folder loop got to, kept between prompts: queue the workflow again with `cursor: continue` and it picks
up after the last file the previous prompt finished.

One cursor per folder and workflow, in `<ComfyUI user>/discomfort/cursors/` (not served over HTTP). Its file name
is a hash of the folder's resolved path and the workflow's identity (the loop node's id and its body's structure),
never a name a workflow gives; it holds the next index and a digest of the folder's file list, so that a folder
whose files changed starts over rather than skip files by position. Each write goes to a temporary file renamed
into place, so a crash leaves the last whole cursor.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1


def cursor_root() -> Path:
    """<ComfyUI user>/discomfort/cursors."""
    import folder_paths

    return Path(folder_paths.get_user_directory()) / "discomfort" / "cursors"


@dataclass(frozen=True)
class Start:
    """Where a run starts, and why there (for the loop's status)."""

    index: int
    why: str


class FolderCursor:
    """The cursor of one folder under one workflow.

    Args:
        root: where cursors live (`cursor_root()` inside ComfyUI).
        folder: the folder, resolved.
        workflow: what identifies the workflow (the loop node's id and its body's fingerprint).
        files: the folder's files the loop goes through, in order.
    """

    def __init__(self, root: str | os.PathLike, folder: Path, workflow: str, files: Sequence[Path]):
        key = hashlib.sha256(json.dumps([str(folder), workflow]).encode()).hexdigest()[:32]
        self.path = Path(root) / f"{key}.json"
        self.folder = folder
        self.total = len(files)
        self.listing = hashlib.sha256("\n".join(path.name for path in files).encode()).hexdigest()

    def start(self) -> Start:
        """Where `continue` starts: after the last file a previous run finished, or at 0 when there is no such
        run, or the folder's files are not those it went through."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Start(0, "no earlier run: from the first file")
        except (OSError, ValueError, UnicodeDecodeError):
            return Start(0, "the cursor could not be read: from the first file")
        index = record.get("next_index") if isinstance(record, dict) else None
        if record.get("format") != FORMAT or isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return Start(0, "the cursor could not be read: from the first file")
        if record.get("listing") != self.listing:
            return Start(0, "the folder's files changed: from the first file")
        index = min(index, self.total)
        return Start(index, f"continued after file {index} of {self.total}" if index else "continued from the start")

    def advance(self, next_index: int) -> None:
        """Record that the files before `next_index` are finished."""
        # The folder and the time are for whoever looks at the file; they are never read back.
        record = {"format": FORMAT, "listing": self.listing, "next_index": next_index, "total": self.total,
                  "folder": str(self.folder), "updated": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)
