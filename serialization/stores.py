"""Where values live when they leave the engine's hands: memory (by reference), a run directory on disk, or
memory that spills to disk above a budget.

On disk a value is the parts of its envelope (`codec.split`) as files: tensors as raw `.safetensors` files (no
base64), the JSON skeleton and metadata beside them. Every write goes to a temporary name and is renamed into
place, the JSON last, so a reader never sees half a value and a crash leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import SerializationError
from . import codec
from .signing import SigningKey

STORAGE_MODES = ("ram", "disk", "auto")
MIB = 1024**2
DEFAULT_BUDGET_MIB = 2048  # auto mode: accumulated values above this total (in MiB) wait on disk
DEFAULT_BUDGET_BYTES = DEFAULT_BUDGET_MIB * MIB
RECORD_KEY = "discomfort"  # safetensors header key holding a lone tensor's record
UNFINISHED_BUDGET_BYTES = 4 * 1024**3  # failed runs' values kept for recovery; the oldest go past this total


class MemoryStore:
    """Values by reference: nothing is copied or serialized."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def put(self, key: str, value: Any) -> None:
        self._values[key] = value

    def get(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"no value stored under {key!r}") from None

    def delete(self, key: str) -> None:
        self._values.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def close(self, *, success: bool = True) -> None:
        self._values.clear()


class DiskStore:
    """Values as files in a directory.

    Args:
        directory: where to write; when None, a new folder under `scratch_root()` (ComfyUI's temp folder).
        persistent: keep the directory when the store closes. A scratch folder is otherwise removed when the run
            succeeds; when it fails it is kept for recovery, moved under `unfinished_root()` (ComfyUI empties
            its temp folder at every start), the oldest kept runs removed past `UNFINISHED_BUDGET_BYTES`.
        key: signs pickled parts (default: this installation's key).
    """

    def __init__(self, directory: str | os.PathLike | None = None, *, persistent: bool = False,
                 key: SigningKey | None = None):  # fmt: skip
        self.persistent = persistent or directory is not None
        if directory is None:
            root = scratch_root()
            root.mkdir(parents=True, exist_ok=True)
            directory = tempfile.mkdtemp(prefix="run-", dir=root)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = key

    def put(self, key: str, value: Any) -> None:
        parts = codec.split(value, self._signing_key() if _may_pickle(value) else None)
        stem = _stem(key)
        record: dict[str, Any] = {"key": key, "type": parts.type, "meta": parts.meta, "skeleton": parts.skeleton}
        if parts.type == "tensor":
            # One file, its record in the safetensors header: as fast as a bare save_file, and the rename commits.
            (self.directory / f"{stem}.json").unlink(missing_ok=True)
            metadata = {RECORD_KEY: json.dumps(record)}
            self._write(f"{stem}.safetensors", lambda path: _save_tensors(parts.tensors, path, metadata))
            return
        if parts.tensors:
            record["tensors"] = self._write(f"{stem}.safetensors", lambda path: _save_tensors(parts.tensors, path))
        if parts.arrays:
            record["arrays"] = self._write(f"{stem}.arrays.safetensors", lambda path: _save_arrays(parts.arrays, path))
        record["pickles"] = {
            name: self._write(_pickle_file(stem, name), lambda path, data=data: path.write_bytes(data))
            for name, data in parts.pickles.items()
        }
        self._write(f"{stem}.json", lambda path: path.write_text(json.dumps(record, allow_nan=False)))

    def get(self, key: str, *, trust: bool = False) -> Any:
        stem = _stem(key)
        record, tensors = self._read(stem)
        if record is None:
            raise KeyError(f"no value stored under {key!r} in {self.directory}")
        parts = codec.Parts(record["type"], record["meta"], record["skeleton"])
        # File names come from the key, never from the record: a record someone edited cannot name other files.
        if tensors is not None:
            parts.tensors = tensors
        elif record.get("tensors"):
            parts.tensors = _load_tensors(self.directory / f"{stem}.safetensors")
        if record.get("arrays"):
            from safetensors.numpy import load_file

            parts.arrays = load_file(self.directory / f"{stem}.arrays.safetensors")
        parts.pickles = {name: (self.directory / _pickle_file(stem, name)).read_bytes()
                         for name in record.get("pickles", {})}  # fmt: skip
        if record["type"] == "pickle":
            parts.skeleton = {"$p": "p0"}
        return codec.join(parts, key=self._signing_key() if parts.pickles else None, trust=trust)

    def record(self, key: str) -> dict[str, Any] | None:
        """What is known of a stored value without loading it: its type and meta (dtype, shape for tensors)."""
        return self._read(_stem(key), load=False)[0]

    def _read(self, stem: str, load: bool = True) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        try:
            return json.loads((self.directory / f"{stem}.json").read_text()), None
        except FileNotFoundError:
            pass
        path = self.directory / f"{stem}.safetensors"
        if not path.exists():
            return None, None
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt") as handle:
                record = json.loads((handle.metadata() or {})[RECORD_KEY])
                return record, ({"value": handle.get_tensor("value")} if load else None)
        except Exception as error:
            raise SerializationError(f"{path}: not a value written by this store ({error})") from None

    def delete(self, key: str) -> None:
        stem = _stem(key)
        (self.directory / f"{stem}.json").unlink(missing_ok=True)  # uncommit first
        for path in self.directory.glob(f"{glob_escape(stem)}.*"):
            path.unlink(missing_ok=True)

    def __contains__(self, key: str) -> bool:
        stem = _stem(key)
        return (self.directory / f"{stem}.json").exists() or (self.directory / f"{stem}.safetensors").exists()

    def keys(self) -> list[str]:
        stems = {path.name.split(".", 1)[0] for path in self.directory.iterdir() if not path.name.startswith(".")}
        return sorted(record["key"] for record in (self._read(stem, load=False)[0] for stem in stems) if record)

    def close(self, *, success: bool = True) -> Path | None:
        """Remove a scratch folder after success; after a failure keep it, and return where (None if empty)."""
        if self.persistent:
            return None
        if success or not any(self.directory.iterdir()):
            shutil.rmtree(self.directory, ignore_errors=True)
            return None
        root = unfinished_root()
        if root is None:  # outside ComfyUI: the folder stays where it is
            return self.directory
        kept = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.directory.name}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            shutil.move(self.directory, kept)
        except OSError:  # the run already failed: keep its values where they are rather than hide why
            return self.directory
        self.directory = kept
        prune(root, UNFINISHED_BUDGET_BYTES, keep=kept)
        return kept

    def _write(self, name: str, write: Any) -> str:
        final = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        try:
            write(temporary)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return name

    def _signing_key(self) -> SigningKey:
        if self._key is None:
            self._key = SigningKey.load_or_create()
        return self._key


class DiskList(Sequence):
    """An append-only list whose items live in a DiskStore: appending frees the item, reading loads one item.

    `as_batch()` joins tensor items into one tensor, filling a preallocated result one item at a time.
    """

    def __init__(self, store: DiskStore, prefix: str = "item", length: int = 0):
        self.store, self.prefix, self._length = store, prefix, length

    def append(self, value: Any) -> None:
        self.store.put(f"{self.prefix}/{self._length}", value)
        self._length += 1

    def truncate(self, length: int) -> None:
        for index in range(length, self._length):
            self.store.delete(f"{self.prefix}/{index}")
        self._length = min(self._length, length)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self.store.get(f"{self.prefix}/{index}")

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(self._length))

    def as_batch(self) -> Any:
        """Tensor items joined along dim 0 (one allocation for the result); otherwise a list of the items."""
        if not self._length:
            return None
        first = self[0]
        if not codec.is_tensor(first):
            return [first, *(self[i] for i in range(1, self._length))]
        import torch

        shapes = []
        for index in range(self._length):
            record = self.store.record(f"{self.prefix}/{index}")
            if record is None or record["type"] != "tensor" or record["meta"]["shape"][1:] != list(first.shape[1:]):
                return list(self)
            shapes.append(record["meta"]["shape"][0])
        result = torch.empty((sum(shapes), *first.shape[1:]), dtype=first.dtype)
        position = 0
        for index, rows in enumerate(shapes):
            result[position : position + rows] = first if index == 0 else self[index]
            position += rows
        return result


class MemoryBudget:
    """The bytes that accumulated values may hold in memory under storage `auto`, shared by every list of a run:
    past it, values go to disk."""

    def __init__(self, limit_bytes: int = DEFAULT_BUDGET_BYTES):
        self.limit_bytes = limit_bytes
        self.held_bytes = 0

    def take(self, size: int) -> bool:
        """Hold `size` more bytes if they fit; False when they do not (nothing is taken then)."""
        if self.held_bytes + size > self.limit_bytes:
            return False
        self.held_bytes += size
        return True


class SpillingList(Sequence):
    """A list kept in memory while its tensors fit the budget (its own of `budget_bytes`, or a `shared` one);
    from the first item that does not fit, later items go to a DiskList."""

    def __init__(self, disk: DiskList, budget_bytes: int = DEFAULT_BUDGET_BYTES, *,
                 shared: MemoryBudget | None = None):  # fmt: skip
        self.memory: list[Any] = []
        self.disk = disk
        self.budget = shared if shared is not None else MemoryBudget(budget_bytes)

    def append(self, value: Any) -> None:
        if not len(self.disk) and self.budget.take(nbytes(value)):
            self.memory.append(value)
        else:
            self.disk.append(value)

    def __len__(self) -> int:
        return len(self.memory) + len(self.disk)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        return self.memory[index] if index < len(self.memory) else self.disk[index - len(self.memory)]


def scratch_root() -> Path:
    """Where disk storage writes while a run lasts: <ComfyUI temp>/discomfort (the system's outside ComfyUI)."""
    temp = _comfy_directory("get_temp_directory")
    return (temp if temp is not None else Path(tempfile.gettempdir())) / "discomfort"


def unfinished_root() -> Path | None:
    """Where the values of failed runs are kept: <ComfyUI user>/discomfort/unfinished (not served over HTTP, not
    emptied by ComfyUI); None outside ComfyUI."""
    user = _comfy_directory("get_user_directory")
    return user / "discomfort" / "unfinished" if user is not None else None


def prune(root: Path, budget_bytes: int, *, keep: Path) -> list[Path]:
    """Remove the oldest folders of `root` (by name: they start with their time) until the rest hold at most
    `budget_bytes`; `keep` always stays. Returns what was removed."""
    folders = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.is_symlink())
    sizes = {folder: _size(folder) for folder in folders}
    total, removed = sum(sizes.values()), []
    for folder in folders:
        if total <= budget_bytes:
            break
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
            total -= sizes[folder]
            removed.append(folder)
    return removed


def remove_path(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder, if there is one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _size(folder: Path) -> int:
    return sum(os.lstat(os.path.join(root, name)).st_size for root, _, files in os.walk(folder) for name in files)


def _comfy_directory(getter: str) -> Path | None:
    folder_paths = sys.modules.get("folder_paths")  # ComfyUI's module, only if ComfyUI already loaded it
    get = getattr(folder_paths, getter, None)
    return Path(get()) if get is not None else None


def make_list(mode: str, store: DiskStore | None, prefix: str, budget: MemoryBudget | None = None) -> Any:
    """The list an accumulation uses under storage `mode` (ram, disk or auto; auto within `budget`)."""
    if mode not in STORAGE_MODES:
        raise SerializationError(f"storage must be one of {', '.join(STORAGE_MODES)}, got {mode!r}")
    if mode == "ram":
        return []
    assert store is not None
    disk = DiskList(store, prefix)
    return disk if mode == "disk" else SpillingList(disk, shared=budget or MemoryBudget())


def make_lists(mode: str, store: DiskStore | None, uids: Sequence[str],
               budget_bytes: int = DEFAULT_BUDGET_BYTES) -> dict[str, Any]:  # fmt: skip
    """One list per accumulated uid (see `make_list`), all of them within one memory budget."""
    budget = MemoryBudget(budget_bytes)
    return {uid: make_list(mode, store, uid, budget) for uid in uids}


def nbytes(value: Any) -> int:
    """Bytes held by the tensors and arrays in a value (what a memory budget counts)."""
    if codec.is_tensor(value) or codec.is_ndarray(value):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


def _stem(key: str) -> str:
    # Keys are uids and paths chosen by users: keep them readable but safe as file names, and distinct.
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:60].strip(".") or "value"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _pickle_file(stem: str, name: Any) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"p\d+", name):  # the codec names pickles p0, p1...
        raise SerializationError(f"{stem}: a stored value names a pickle {name!r}, which the codec never writes")
    return f"{stem}.{name}.pkl"


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def _may_pickle(value: Any) -> bool:
    return not (codec.is_tensor(value) or codec.is_ndarray(value) or codec.is_plain_json(value))


def _save_tensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    prepared = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    try:
        save_file(prepared, path, metadata)
    except RuntimeError:  # views of one storage: safetensors wants each tensor to own its bytes
        save_file({name: tensor.clone() for name, tensor in prepared.items()}, path, metadata)


def _save_arrays(arrays: dict[str, Any], path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({name: np.ascontiguousarray(array) for name, array in arrays.items()}, path)


def _load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as error:
        raise SerializationError(f"{path}: not a valid safetensors file ({error})") from None
