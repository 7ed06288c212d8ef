"""Fanning a loop's independent iterations out: what one item is, which item a free worker runs next, the order
results are handed back in, and the ledger of finished items that lets a rerun do only what is left.

Pure bookkeeping over plain data: nothing here imports Ray or ComfyUI (`executor/ray_workers.py` drives it with
Ray's actors). Items cross to other processes, so they are plain dicts: values by uid, and optionally an image file
that the worker loads itself (a folder's files are read where they are used, not shipped from the driver).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..serialization.checkpoint import Checkpoint, CheckpointMismatch, verified
from ..serialization.codec import digest
from ..serialization.signing import SigningKey
from ..serialization.stores import DiskStore
from .plan import ITERATION_UID, LoopPlan

IMAGE_FILE = "$image_file"  # an item's key naming an image file whose pixels fill its image and mask uids
FOLDER_UIDS = ("image", "mask", "filename", "basename", "index", "total")  # what a folder item gives (folder loop)
MAX_ATTEMPTS = 3  # runs of one item whose worker died under it before the item itself is taken to be at fault
LEDGER_FORMAT = 1

Item = dict[str, Any]


def check_independent(plan: LoopPlan) -> None:
    """Refuse a loop whose iterations depend on each other: their order is the point, they cannot fan out."""
    if plan.carried:
        raise SettingsError(
            f"loop {plan.loop_id}: its iterations cannot fan out over workers, each needs the one before: uid(s) "
            f"{', '.join(sorted(plan.carried))} leave the body {plan.body_name!r} and enter it again; run it "
            "in-process (workers 0)"
        )


def folder_items(files: Sequence[Path], start: int = 0, total: int | None = None) -> list[Item]:
    """One item per image file, giving what the folder loop gives each iteration: image, mask, filename, basename,
    index (from `start`) and total (the folder's files, `start` + len(files) unless said)."""
    total = start + len(files) if total is None else total
    return [{IMAGE_FILE: str(path), "filename": path.name, "basename": path.stem, "index": start + k, "total": total}
            for k, path in enumerate(files)]  # fmt: skip


def check_items(plan: LoopPlan, items: Sequence[Mapping[str, Any]], initial: Mapping[str, Any]) -> list[Item]:
    """`items` as plain dicts, each naming only uids the body takes; folder items drop the uids it does not take.

    Every item must give the same uids (a uid given by some items only would take another value, from `initial`
    or a feeder, in the others: a mistake more often than a plan).
    """
    checked = []
    for k, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SettingsError(f"item {k}: an item is a dict of values by uid, got {type(item).__name__}")
        item = dict(item)
        if IMAGE_FILE in item:  # a folder's file: like the folder loop, feed the uids the body has entries for
            item = {uid: value for uid, value in item.items() if uid == IMAGE_FILE or uid in plan.entries}
        uids = sorted(uid for uid in item if uid != IMAGE_FILE)
        unknown = [uid for uid in uids if uid not in plan.entries or uid == ITERATION_UID]
        if unknown:
            known = ", ".join(sorted(uid for uid in plan.entries if uid != ITERATION_UID)) or "none"
            raise SettingsError(
                f"item {k}: no entry port in body {plan.body_name!r} takes uid {', '.join(unknown)} (entries: {known})"
            )
        both = sorted(set(uids) & set(initial))
        if both:
            raise SettingsError(f"item {k}: uid {', '.join(both)} is given both by the items and as an input")
        if checked and sorted(item) != sorted(checked[0]):
            raise SettingsError(f"item {k} gives uids {', '.join(uids) or 'none'}; item 0 gives "
                                f"{', '.join(u for u in sorted(checked[0]) if u != IMAGE_FILE) or 'none'}")  # fmt: skip
        checked.append(item)
    return checked


def item_makers(item: Mapping[str, Any], plan: LoopPlan, index: int) -> dict[str, Callable[[int], Any]]:
    """The per-iteration values of one item, for `run_loop(per_iteration=...)`: made when its iteration starts,
    an image file loaded once for both its image and its mask. `index` is the item's place in the whole run,
    which the body's `iteration` entry takes."""
    makers = {uid: _constant(value) for uid, value in item.items() if uid != IMAGE_FILE}
    if IMAGE_FILE in item:
        loaded = _ImageOnce(Path(item[IMAGE_FILE]))
        for part, uid in enumerate(("image", "mask")):
            if uid in plan.entries:
                makers[uid] = lambda _i, part=part: loaded()[part]
    if ITERATION_UID in plan.entries:
        makers[ITERATION_UID] = _constant(index)
    return makers


def items_as_iterations(items: Sequence[Mapping[str, Any]], plan: LoopPlan) -> dict[str, Callable[[int], Any]]:
    """All items as the iterations of one in-process loop: iteration i takes item i's values."""
    if not items:
        return {}
    cache: dict[int, dict[str, Callable[[int], Any]]] = {}

    def value(uid: str) -> Callable[[int], Any]:
        def make(i: int) -> Any:
            if i not in cache:
                cache.clear()  # one item's values held at a time
                cache[i] = item_makers(items[i], plan, i)
            return cache[i][uid](i)

        return make

    return {uid: value(uid) for uid in item_makers(items[0], plan, 0)}


def _constant(value: Any) -> Callable[[int], Any]:
    return lambda _i: value


class _ImageOnce:
    def __init__(self, path: Path):
        self.path, self.value = path, None

    def __call__(self) -> tuple[Any, Any]:
        if self.value is None:
            from ..nodes.folder import load_image

            self.value = load_image(self.path)
        return self.value


def describe(item: Mapping[str, Any], index: int, total: int) -> str:
    """How messages name an item: its number, and its file when it has one."""
    name = Path(item[IMAGE_FILE]).name if IMAGE_FILE in item else None
    return f"item {index + 1}/{total}" + (f" ({name})" if name else "")


class Schedule:
    """Which item a free worker runs next: items in order, an item whose worker died under it first again.

    An item is lost with its worker at most `max_attempts` times; past that, the item itself is taken to kill
    its workers, and `lost` says so.
    """

    def __init__(self, indices: Iterable[int], max_attempts: int = MAX_ATTEMPTS):
        self._pending = deque(indices)
        self._attempts: dict[int, int] = {}
        self.max_attempts = max_attempts

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> int:
        index = self._pending.popleft()
        self._attempts[index] = self._attempts.get(index, 0) + 1
        return index

    def lost(self, index: int) -> bool:
        """The worker running `index` died: queue it first again, unless it has had its attempts."""
        if self._attempts.get(index, 0) >= self.max_attempts:
            return False
        self._pending.appendleft(index)
        return True

    def attempts(self, index: int) -> int:
        return self._attempts.get(index, 0)

    def drop(self) -> None:
        """Hand out nothing more (the run stops)."""
        self._pending.clear()


class InOrder:
    """Results arrive as workers finish; they are released in item order, each once all before it are in."""

    def __init__(self, indices: Iterable[int]):
        self._order = deque(indices)
        self._waiting: dict[int, Any] = {}

    def add(self, index: int, result: Any) -> list[tuple[int, Any]]:
        if index in self._waiting or index not in self._order:
            raise ValueError(f"item {index} is not awaited")  # a second result for one item: a bug, not input
        self._waiting[index] = result
        released = []
        while self._order and self._order[0] in self._waiting:
            first = self._order.popleft()
            released.append((first, self._waiting.pop(first)))
        return released

    def __len__(self) -> int:
        return len(self._order)


class Ledger:
    """Finished items on disk, so a rerun after the driver died does only what is left.

        <directory>/.lock           held while a run uses the folder (as a checkpoint's, serialization/checkpoint.py)
        <directory>/fanout.json     what run this is: its fingerprint (body, settings, items) and item count
        <directory>/finished.jsonl  one line per finished item, appended when it finishes: the commit point
        <directory>/values/         accumulated values of finished items (a DiskStore), written before the line

    The folder is taken as a checkpoint folder is: a link, a folder of other files or one another run holds is
    refused. The header and every line are signed with the installation's key, since a server's clients can replace
    files in its output folder: an edited ledger is refused, not resumed. Appending keeps each item's cost constant
    however many items the run has. A line cut short by a crash is ignored, and so is its item's value: that item
    runs again.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: str, total: int, *, holder: str = "",
                 key: SigningKey | None = None):  # fmt: skip
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.total = total
        self._folder = Checkpoint(directory, fingerprint, holder=holder, key=key)
        self._key = key
        self._store: DiskStore | None = None
        self._log: Any = None

    @property
    def header(self) -> Path:
        return self.directory / "fanout.json"

    @property
    def log_file(self) -> Path:
        return self.directory / "finished.jsonl"

    def open(self, resume: bool) -> dict[int, dict[str, Any]]:
        """Start the run: resume the ledger's finished items (returned, by item), or start over."""
        self._folder.open()
        try:
            finished = self._resumed() if resume and self.header.exists() else None
            if finished is None:
                finished = {}
                self._folder.reset()
                temporary = self.directory / ".fanout.json.tmp"
                temporary.write_text(self._signed({"format": LEDGER_FORMAT, "fingerprint": self.fingerprint,
                                                   "items": self.total}))  # fmt: skip
                os.replace(temporary, self.header)
        except BaseException:
            self._folder.close()
            raise
        self._store = DiskStore(self.directory / "values", persistent=True, key=self._key)
        self._log = open(self.log_file, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        return finished

    def finish(self, index: int, values: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
        """Commit item `index`: its accumulated values, then its line (`entry`: seconds and what it showed, or why
        it was skipped)."""
        assert self._store is not None and self._log is not None, "open() the ledger first"
        for uid, value in values.items():
            self._store.put(f"{uid}/{index}", value)
        self._log.write(self._signed({"item": index, **entry}) + "\n")
        self._log.flush()  # a killed driver loses nothing written; a power cut may cost the last items a rerun

    def value(self, uid: str, index: int) -> Any:
        assert self._store is not None
        return self._store.get(f"{uid}/{index}")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self._folder.close()

    def _resumed(self) -> dict[int, dict[str, Any]]:
        try:
            header = json.loads(self.header.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            header = None
        header = verified(header, self._signing_key(), str(self.header))
        if header.get("format") != LEDGER_FORMAT or header.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatch(
                f"{self.directory} holds the finished items of a different run (its body, settings, inputs or "
                "items changed since); resume refused. Use another checkpoint folder, or run without resume "
                "to start over"
            )
        finished: dict[int, dict[str, Any]] = {}
        if not self.log_file.exists():
            return finished
        for number, line in enumerate(self.log_file.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut short by a crash
            entry = verified(record, self._signing_key(), f"{self.log_file}, line {number}")
            if isinstance(entry.get("item"), int) and 0 <= entry["item"] < self.total:
                finished[entry.pop("item")] = entry
        return finished

    def _signed(self, record: dict[str, Any]) -> str:
        return json.dumps({**record, "signature": self._signing_key().sign_record(record)})

    def _signing_key(self) -> SigningKey:
        if self._key is None:
            self._key = SigningKey.load_or_create()
        return self._key


class StoredValues(Sequence):
    """One uid's accumulated values in item order, read from the ledger one at a time. `indices` is the run's own
    list of accumulated items, which grows as they are handed on."""

    def __init__(self, ledger: Ledger, uid: str, indices: list[int]):
        self.ledger, self.uid, self.indices = ledger, uid, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Any:  # type: ignore[override]
        if isinstance(position, slice):
            return [self[p] for p in range(*position.indices(len(self)))]
        return self.ledger.value(self.uid, self.indices[position])

    def __iter__(self) -> Iterator[Any]:
        return (self[p] for p in range(len(self)))


def run_fingerprint(plan: LoopPlan, accumulate: Sequence[str], initial: Mapping[str, Any],
                    items: Sequence[Mapping[str, Any]]) -> str:  # fmt: skip
    """Equal for the same body, accumulated uids, inputs and items: what a ledger may be resumed under."""
    hashed = hashlib.sha256(plan.fingerprint.encode())
    hashed.update(json.dumps(sorted(accumulate)).encode())
    for values in (initial, *items):
        for uid in sorted(values):
            hashed.update(uid.encode())
            hashed.update(_file_digest(values[uid]) if uid == IMAGE_FILE else digest(values[uid]))
        hashed.update(b"\0")
    return hashed.hexdigest()


def _file_digest(path: str) -> bytes:
    """A file by its name, size and modification time: reading 100,000 images to hash them would cost a run."""
    try:
        stat = Path(path).stat()
    except OSError:
        return path.encode()
    return repr((path, stat.st_size, stat.st_mtime_ns)).encode()
