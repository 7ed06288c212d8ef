"""A loop's state on disk after every finished iteration, so that a killed run resumes where it stopped.

    <directory>/state.json          the commit point: iteration count, body fingerprint, where the values are
    <directory>/values-<k>/         carried values after iteration k (a DiskStore)
    <directory>/accumulated/        every accumulated value, one item per iteration (a DiskStore of DiskLists)

Saving iteration k writes its accumulated items and `values-k`, then replaces state.json atomically, then
removes `values-(k-1)`. A crash at any point leaves the previous state.json, naming files that are still whole;
items written past it are dropped on resume. So at most the iteration in flight is redone.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DiscomfortError
from .stores import DiskList, DiskStore

FORMAT = 1


class CheckpointMismatch(DiscomfortError):
    """The checkpoint was written by a different loop body or settings; resuming it would mix two runs."""


@dataclass
class CheckpointState:
    iteration: int
    values: dict[str, Any]
    accumulated: dict[str, DiskList] = field(default_factory=dict)
    stopped: bool = False


class Checkpoint:
    def __init__(self, directory: str | os.PathLike, fingerprint: str, accumulate: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.accumulate = accumulate
        self._accumulated_store: DiskStore | None = None

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    def exists(self) -> bool:
        return self.state_file.exists()

    def load(self) -> CheckpointState:
        """The last committed state; raises `CheckpointMismatch` if another body or settings wrote it."""
        state = json.loads(self.state_file.read_text())
        if state.get("format") != FORMAT:
            raise CheckpointMismatch(f"{self.state_file}: checkpoint format {state.get('format')!r} is not {FORMAT}")
        if state["fingerprint"] != self.fingerprint:
            raise CheckpointMismatch(
                f"{self.directory} holds a checkpoint of a different loop (its body, settings or initial values "
                "changed since); resume refused. Use another checkpoint folder, or run without resume to start over"
            )
        iteration = int(state["iteration"])
        values_dir = self.directory / state["values"] if state.get("values") else None
        values = {}
        if values_dir is not None:
            store = DiskStore(values_dir, persistent=True)
            values = {uid: store.get(uid) for uid in state["uids"]}
        accumulated = {}
        for uid in self.accumulate:
            items = DiskList(self._accumulated(), uid, length=iteration)
            accumulated[uid] = items
        return CheckpointState(iteration, values, accumulated, bool(state.get("stopped")))

    def reset(self) -> None:
        """Forget any previous run in this folder."""
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self._accumulated_store = None

    def accumulation(self, uid: str, length: int = 0) -> DiskList:
        """Where the loop appends `uid`'s values; the checkpoint owns them, so they are already on disk."""
        items = DiskList(self._accumulated(), uid, length=length)
        items.truncate(length)  # items of an iteration that never committed
        return items

    def save(self, iteration: int, values: dict[str, Any], *, stopped: bool = False) -> None:
        """Commit the state after `iteration` finished iterations (accumulated items are appended already)."""
        values_name = f"values-{iteration}"
        staging = self.directory / f".{values_name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        store = DiskStore(staging, persistent=True)
        for uid, value in values.items():
            store.put(uid, value)
        final = self.directory / values_name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        previous = json.loads(self.state_file.read_text()).get("values") if self.exists() else None
        state = {"format": FORMAT, "fingerprint": self.fingerprint, "iteration": iteration, "values": values_name,
                 "uids": sorted(values), "stopped": stopped}  # fmt: skip
        temporary = self.directory / ".state.json.tmp"
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.state_file)
        if previous and previous != values_name:
            shutil.rmtree(self.directory / previous, ignore_errors=True)

    def _accumulated(self) -> DiskStore:
        if self._accumulated_store is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._accumulated_store = DiskStore(self.directory / "accumulated", persistent=True)
        return self._accumulated_store
