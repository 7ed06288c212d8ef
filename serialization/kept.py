"""Accumulated values kept after a successful run, for another run (or another program) to read back.

A kept folder is a `DiskStore` holding one value per uid (the uid's values of every iteration, joined) and a
manifest, `kept.json`, naming the uids. A run replaces the folder as a whole: the new values are written beside it
and renamed into place, so a reader never sees half of one run and half of another. The folder usually lies under
ComfyUI's output folder, whose files anyone who reaches the server can replace: no path is read from it (values
are found by their uid, as the store names them), links are refused, and pickles load only when this installation
signed them.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SerializationError
from .signing import SigningKey
from .stores import DiskStore, remove_path

MANIFEST = "kept.json"
FORMAT = 1


class KeptError(SerializationError):
    """A kept folder cannot be written or read: a link, a folder of other files, a missing or malformed manifest."""


def keep(directory: str | os.PathLike, values: Mapping[str, Any], *, iterations: int,
         path: Sequence[Sequence[str]] = (), key: SigningKey | None = None) -> Path:  # fmt: skip
    """Store `values` (uid -> value) as the kept folder `directory`, replacing what an earlier run kept there.

    `iterations` and `path` (the files each iteration ran, for a conditional pipeline) go into the manifest. A
    folder that holds other files (no manifest) is refused rather than emptied."""
    directory = Path(directory)
    check_writable(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    old = directory.with_name(f".{directory.name}.{os.getpid()}.old")
    for leftover in (staging, old):
        remove_path(leftover)
    try:
        store = DiskStore(staging, persistent=True, key=key)
        for uid, value in values.items():
            store.put(uid, value)
        manifest = {"format": FORMAT, "uids": sorted(values), "iterations": iterations,
                    "path": [list(step) for step in path]}  # fmt: skip
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if os.path.lexists(directory):
            os.replace(directory, old)
        os.replace(staging, directory)
    finally:
        remove_path(staging)
        remove_path(old)
    return directory


def check_writable(directory: str | os.PathLike) -> None:
    """Raise `KeptError` if `keep` would refuse `directory` (a link, a file, a folder of other files): checked
    before a run starts, so that it does not fail at its end."""
    _check_folder(Path(directory), writing=True)


def read_kept(directory: str | os.PathLike, *, uids: Sequence[str] | None = None,
              key: SigningKey | None = None) -> dict[str, Any]:  # fmt: skip
    """The values a run kept in `directory` by uid (all of them, or those of `uids`)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    missing = [uid for uid in uids or () if uid not in manifest["uids"]]
    if missing:
        raise KeptError(f"{directory} keeps no uid {', '.join(map(repr, missing))} (it keeps: "
                        f"{', '.join(manifest['uids']) or 'none'})")  # fmt: skip
    store = DiskStore(directory, persistent=True, key=key)
    return {uid: store.get(uid) for uid in (manifest["uids"] if uids is None else uids)}


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """What a kept folder holds: {"format", "uids", "iterations", "path"}; raises `KeptError` naming the folder."""
    directory = Path(directory)
    _check_folder(directory, writing=False)
    links = sorted(entry.name for entry in os.scandir(directory) if entry.is_symlink())
    if links:
        raise KeptError(f"kept values folder {directory} holds a link ({links[0]}); links are not followed there")
    file = directory / MANIFEST
    if not file.is_file():
        raise KeptError(f"{directory} holds no kept values (no {MANIFEST})")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise KeptError(f"{file} is not a manifest of kept values (not JSON)") from None
    uids = manifest.get("uids") if isinstance(manifest, dict) else None
    if manifest.get("format") != FORMAT or not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
        raise KeptError(f"{file} is not a manifest of kept values this version of Discomfort reads")
    return manifest


def _check_folder(directory: Path, *, writing: bool) -> None:
    try:
        mode = os.lstat(directory).st_mode
    except FileNotFoundError:
        if writing:
            return
        raise KeptError(f"{directory}: no such folder of kept values") from None
    if stat.S_ISLNK(mode):
        raise KeptError(f"kept values folder {directory} is a link; give the folder itself")
    if not stat.S_ISDIR(mode):
        raise KeptError(f"kept values folder {directory} is a file, not a folder")
    if writing and any(os.scandir(directory)) and not os.path.lexists(directory / MANIFEST):
        raise KeptError(f"{directory} is not empty and holds no kept values; keeping values there would delete its "
                        "files. Name a new or empty folder")  # fmt: skip
