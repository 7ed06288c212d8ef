"""A loop's state on disk after every finished iteration, so that a killed run resumes where it stopped.

    <directory>/.lock               held (flock) by the run using the folder; says who that is; marks the folder
    <directory>/state.json          the commit point: iteration count, fingerprint, carried uids, accumulated
                                    counts, a conditional pipeline's path and next step; signed
    <directory>/values-<k>/         carried values after iteration k (a DiskStore)
    <directory>/accumulated/        every accumulated value, one item per iteration that gave it (DiskLists)

Saving iteration k writes its accumulated items and `values-k`, then replaces state.json atomically, then
removes the other `values-*` folders. A crash at any point leaves the previous state.json, naming files that are
still whole; items written past it are dropped on resume. So at most the iteration in flight is redone.

A checkpoint folder is readable and writable by others: under ComfyUI's output folder anyone who reaches the
server can download and replace its files (`/view`, `/upload/image`). So nothing in it is trusted: every path is
derived from the folder itself, never read from a file; state.json carries an HMAC under this installation's
signing key and an edited one is refused; a link anywhere in the folder is refused rather than followed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import DiscomfortError
from .signing import SigningKey
from .stores import DiskList, DiskStore, remove_path

FORMAT = 3  # 3 added the path of a conditional pipeline and per-uid accumulated counts
READ_FORMATS = (2, 3)  # format 2 states are read as those of loops that accumulate every uid every iteration
STATE = "state.json"
LOCK = ".lock"
ACCUMULATED = "accumulated"
VALUES = re.compile(r"values-\d+")
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no links to follow this way


class CheckpointError(DiscomfortError):
    """A checkpoint folder cannot be used: not a checkpoint, altered, holding links, or in use by another run."""


class CheckpointMismatch(CheckpointError):
    """The checkpoint was written by a different loop body or settings; resuming it would mix two runs."""


class CheckpointLocked(CheckpointError):
    """Another run (this process or another, this machine or another sharing the folder) uses the checkpoint."""


@dataclass
class CheckpointState:
    iteration: int
    values: dict[str, Any]
    accumulated: dict[str, DiskList] = field(default_factory=dict)
    stopped: bool = False
    # A conditional pipeline's: the files each iteration ran, those the next one runs (None: the path ended),
    # and the structure of every step of the path, by its files joined with newlines.
    path: list[tuple[str, ...]] = field(default_factory=list)
    next: tuple[str, ...] | None = None
    plans: dict[str, str] = field(default_factory=dict)


class Checkpoint:
    """A checkpoint folder, used by one run at a time: `open()` takes it (or raises `CheckpointLocked`), `close()`
    lets it go; the operating system lets it go too when the process dies, so a killed run never blocks a resume.

    Args:
        directory: the folder; made if missing. One that holds files but no checkpoint is refused.
        fingerprint: what the loop body, settings and initial values hash to; a resume of another one is refused.
        accumulate: the uids whose every value the checkpoint keeps.
        holder: who uses it, for the message another run gets (e.g. "prompt 1a2b…").
        key: signs and checks state.json (default: this installation's key).
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: str, accumulate: tuple[str, ...] = (), *,
                 holder: str = "", key: SigningKey | None = None):  # fmt: skip
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.accumulate = accumulate
        self.holder = holder
        self._key = key
        self._lock: BinaryIO | None = None  # the open lock file; closing it (or collecting it) lets go
        self._accumulated_store: DiskStore | None = None

    @property
    def state_file(self) -> Path:
        return self.directory / STATE

    def open(self) -> None:
        """Take the folder for this run: refuse a link, a folder of other files, or one another run holds."""
        self._check_folder()
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT | NO_FOLLOW, 0o644)
        try:
            _lock(descriptor)
        except OSError:
            try:
                holder = _read_all(descriptor).decode("utf-8", "replace").strip() or "another run"
            except OSError:  # Windows forbids reading a region another process locked
                holder = "another run"
            os.close(descriptor)
            raise CheckpointLocked(
                f"checkpoint folder {self.directory} is in use by {holder}; wait for that run to end, or give this "
                "loop another checkpoint folder"
            ) from None
        self._lock = os.fdopen(descriptor, "r+b", buffering=0)
        self._lock.truncate(0)
        who = f"{self.holder} " if self.holder else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        self._lock.write(f"{who}(pid {os.getpid()} on {socket.gethostname()}, since {since})".encode())
        self._refuse_links()

    def close(self) -> None:
        """Let the folder go (its lock file stays: it marks the folder as a checkpoint)."""
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None
        self._accumulated_store = None

    def __enter__(self) -> Checkpoint:
        self.open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def exists(self) -> bool:
        return os.path.lexists(self.state_file)

    def load(self) -> CheckpointState:
        """The last committed state; raises `CheckpointMismatch` if another body or settings wrote it, and
        `CheckpointError` if it was edited or written by another installation."""
        self._check_open()
        state = self._read_state()
        if state["fingerprint"] != self.fingerprint:
            raise CheckpointMismatch(
                f"{self.directory} holds a checkpoint of a different loop (its body, settings or initial values "
                "changed since); resume refused. Use another checkpoint folder, or run without resume to start over"
            )
        iteration = state["iteration"]
        store = DiskStore(self.directory / f"values-{iteration}", persistent=True, key=self._key)
        values = {uid: store.get(uid) for uid in state["uids"]}
        lengths = state.get("accumulated", {})
        accumulated = {uid: DiskList(self._accumulated(), uid, length=lengths.get(uid, iteration))
                       for uid in self.accumulate}  # fmt: skip
        following = state.get("next")
        return CheckpointState(iteration, values, accumulated, state["stopped"], _unfolded(state.get("path", [])),
                               tuple(following) if following is not None else None,
                               dict(state.get("plans", {})))  # fmt: skip

    def reset(self) -> None:
        """Forget any previous run in this folder (its lock file, held by this run, stays)."""
        self._check_open()
        for entry in os.scandir(self.directory):
            if entry.name == LOCK:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)  # a link is removed, never followed
        self._accumulated_store = None

    def accumulation(self, uid: str, length: int = 0) -> DiskList:
        """Where the loop appends `uid`'s values; the checkpoint owns them, so they are already on disk."""
        items = DiskList(self._accumulated(), uid, length=length)
        items.truncate(length)  # items of an iteration that never committed
        return items

    def save(self, iteration: int, values: dict[str, Any], *, stopped: bool = False,
             lengths: Mapping[str, int] | None = None, path: Sequence[Sequence[str]] = (),
             next: Sequence[str] | None = None, plans: Mapping[str, str] | None = None) -> None:  # fmt: skip
        """Commit the state after `iteration` finished iterations (accumulated items are appended already:
        `lengths` says how many each uid has, `iteration` when not given). A conditional pipeline also commits its
        `path`, the files of the `next` step and the structure of its steps (`plans`)."""
        self._check_open()
        values_name = f"values-{iteration}"
        staging = self.directory / f".{values_name}.tmp"
        remove_path(staging)
        store = DiskStore(staging, persistent=True, key=self._key)
        for uid, value in values.items():
            store.put(uid, value)
        final = self.directory / values_name
        remove_path(final)
        os.replace(staging, final)
        counts = {uid: (lengths or {}).get(uid, iteration) for uid in self.accumulate}
        state = {"format": FORMAT, "fingerprint": self.fingerprint, "iteration": iteration, "uids": sorted(values),
                 "stopped": stopped, "accumulated": counts,
                 "path": _folded(path), "next": list(next) if next is not None else None,
                 "plans": dict(plans or {})}  # fmt: skip
        state["signature"] = self._signing_key().sign_record(state)
        temporary = self.directory / f".{STATE}.tmp"
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.state_file)
        for entry in os.scandir(self.directory):  # the values of earlier commits
            if VALUES.fullmatch(entry.name) and entry.name != values_name:
                remove_path(Path(entry.path))

    def _read_state(self) -> dict[str, Any]:
        try:
            descriptor = os.open(self.state_file, os.O_RDONLY | NO_FOLLOW)
        except OSError as error:
            raise CheckpointError(f"{self.state_file}: cannot be read ({error.strerror})") from None
        try:
            text = _read_all(descriptor)
        finally:
            os.close(descriptor)
        try:
            state = json.loads(text)
        except ValueError:
            raise CheckpointError(f"{self.state_file} is not a checkpoint state (not JSON); resume refused") from None
        if not isinstance(state, dict) or state.get("format") not in READ_FORMATS:
            found = state.get("format") if isinstance(state, dict) else None
            raise CheckpointError(f"{self.state_file}: checkpoint format {found!r} is not {FORMAT}; resume refused. "
                                  "Run without resume to start over")  # fmt: skip
        return verified(state, self._signing_key(), str(self.state_file))

    def _check_folder(self) -> None:
        try:
            mode = os.lstat(self.directory).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise CheckpointError(f"checkpoint folder {self.directory} is a link; give the folder itself")
        if not stat.S_ISDIR(mode):
            raise CheckpointError(f"checkpoint folder {self.directory} is a file, not a folder")
        names = set(os.listdir(self.directory))
        if names and not names & {LOCK, STATE}:
            raise CheckpointError(
                f"{self.directory} is not empty and holds no checkpoint; a checkpoint would delete its files. Give "
                "the loop a new or empty folder"
            )

    def _refuse_links(self) -> None:
        for root, folders, files in os.walk(self.directory):
            for name in folders + files:
                if os.path.islink(os.path.join(root, name)):
                    self.close()
                    raise CheckpointError(
                        f"checkpoint folder {self.directory} holds a link ({Path(root, name)}); links are not "
                        "followed in a checkpoint. Remove it, or give the loop another folder"
                    )

    def _check_open(self) -> None:
        if self._lock is None:
            raise CheckpointError(f"checkpoint folder {self.directory} is not open; call open() first")

    def _accumulated(self) -> DiskStore:
        if self._accumulated_store is None:
            self._accumulated_store = DiskStore(self.directory / ACCUMULATED, persistent=True, key=self._key)
        return self._accumulated_store

    def _signing_key(self) -> SigningKey:
        if self._key is None:
            self._key = SigningKey.load_or_create()
        return self._key


def verified(record: Any, key: SigningKey, where: str) -> dict[str, Any]:
    """`record` without its signature, if `key` made it; else a `CheckpointError` naming `where` (a file, a line)."""
    signature = record.pop("signature", None) if isinstance(record, dict) else None
    if not isinstance(signature, str) or not key.verify_record(record, signature):
        raise CheckpointError(
            f"{where} was edited, or written by another installation: its signature does not match; resume "
            "refused. Run without resume to start over"
        )
    return record


def _folded(path: Sequence[Sequence[str]]) -> list[list[Any]]:
    """A path as [[files, times in a row], ...]: a refinement that runs one file a thousand times is one entry."""
    folded: list[list[Any]] = []
    for step in path:
        if folded and folded[-1][0] == list(step):
            folded[-1][1] += 1
        else:
            folded.append([list(step), 1])
    return folded


def _unfolded(folded: list[list[Any]]) -> list[tuple[str, ...]]:
    return [tuple(step) for step, times in folded for _ in range(times)]


def _read_all(descriptor: int) -> bytes:
    os.lseek(descriptor, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(descriptor, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


if sys.platform == "win32":
    import msvcrt

    def _lock(descriptor: int) -> None:
        msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)  # released when the handle closes, or the process ends

else:
    import fcntl

    def _lock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the descriptor closes, or the
        # process dies: a killed run's lock never outlives it
