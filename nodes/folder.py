"""Folders of images: loading one image or the whole folder, and looping over a folder one image at a time."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import DiscomfortError, SettingsError, WorkflowError, shown
from ..executor import compat
from ..executor.loop_node import DiscomfortLoop
from ..workflow.files import checked_name

FILTERS = {
    "images": ("*.png", "*.jpg", "*.jpeg", "*.webp", "*.bmp", "*.tif", "*.tiff", "*.gif"),
    "png": ("*.png",),
    "jpg": ("*.jpg", "*.jpeg"),
    "webp": ("*.webp",),
    "custom": (),
}
SIZE_POLICIES = ("error", "resize", "pad")
CURSOR_MODES = ("reset", "continue")  # the folder loop: start at the first file, or after the last one finished
FOLDERS_ENV = "DISCOMFORT_FOLDERS"  # extra folders (os.pathsep-separated) a workflow may read images from


def natural_key(path: Path) -> list:
    """'img2' before 'img10', case-insensitively."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def allowed_roots() -> list[Path]:
    import folder_paths

    roots = [folder_paths.get_input_directory(), folder_paths.get_output_directory()]
    roots += [entry for entry in os.environ.get(FOLDERS_ENV, "").split(os.pathsep) if entry]
    return [Path(root).resolve() for root in roots]


def resolve_folder(name: str) -> Path:
    """A folder a workflow names: relative to ComfyUI's input folder, or inside the input or output folder or one
    listed in $DISCOMFORT_FOLDERS. Workflows come from anywhere; they may not read the rest of the disk."""
    import folder_paths

    try:
        name = checked_name(name, "folder").strip()
    except WorkflowError as error:
        raise SettingsError(str(error)) from None
    if not name:
        raise SettingsError("name a folder of images (relative to ComfyUI's input folder)")
    path = Path(name).expanduser()
    path = (path if path.is_absolute() else Path(folder_paths.get_input_directory()) / path).resolve()
    if not any(path == root or path.is_relative_to(root) for root in allowed_roots()):
        raise SettingsError(
            f"folder {name!r} is outside ComfyUI's input and output folders; add its parent to ${FOLDERS_ENV} "
            "to allow it"
        )
    if not path.is_dir():
        raise SettingsError(f"folder {path} does not exist")
    return path


def list_images(folder: Path, filter_name: str, custom_pattern: str = "") -> list[Path]:
    """The folder's files matching the filter (or the custom glob patterns), in natural order. Every match lies
    inside `folder`: a pattern cannot climb out of it (pathlib's glob follows `..`), nor can a link in it."""
    patterns = FILTERS.get(filter_name)
    if patterns is None:
        raise SettingsError(f"filter must be one of {', '.join(FILTERS)}, got {filter_name!r}")
    if filter_name == "custom":
        patterns = tuple(_checked_pattern(p.strip(), folder) for p in str(custom_pattern).split(",") if p.strip())
        if not patterns:
            raise SettingsError("filter 'custom' needs a pattern, e.g. 'shot_*.png'")
    root = folder.resolve()
    found = set()
    for glob in {case for pattern in patterns for case in (pattern, pattern.upper())}:
        for path in folder.glob(glob):
            if not path.is_file():
                continue
            if not path.resolve().is_relative_to(root):
                raise SettingsError(f"{path.relative_to(folder)} in {folder} leads out of the folder (a link); "
                                    "only files inside the folder are read")  # fmt: skip
            found.add(path)
    return sorted(found, key=natural_key)


def _checked_pattern(pattern: str, folder: Path) -> str:
    pattern = pattern.replace("\\", "/")  # a pattern written on Windows means the same here
    if pattern.startswith("/") or re.match(r"[A-Za-z]:", pattern):
        raise SettingsError(f"custom_pattern {pattern!r} must be relative to the folder, e.g. 'shot_*.png'")
    if ".." in pattern.split("/"):
        raise SettingsError(f"custom_pattern {pattern!r} leads out of {folder}; it may only match files inside it")
    return pattern


def load_image(path: Path) -> tuple[Any, Any]:
    """ComfyUI's IMAGE [1, H, W, 3] and MASK [1, H, W] (1 where transparent, as LoadImage makes it), EXIF applied."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError) as error:
        raise WorkflowError(f"{path.name}: not a readable image ({error})") from None
    rgb = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)[None]
    if "A" in image.getbands():
        alpha = torch.from_numpy(np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0)
        mask = (1.0 - alpha)[None]
    else:
        mask = torch.zeros((1, rgb.shape[1], rgb.shape[2]), dtype=torch.float32)
    return rgb, mask


def fit(images: list[Any], masks: list[Any], policy: str, names: list[str]) -> tuple[Any, Any]:
    """One batch from images of possibly different sizes: refuse, resize to the first, or pad to the largest."""
    import torch
    import torch.nn.functional as functional

    sizes = {tuple(image.shape[1:3]) for image in images}
    if len(sizes) > 1:
        if policy == "error":
            listed = ", ".join(f"{name} {tuple(image.shape[1:3])}" for name, image in zip(names, images, strict=True))
            raise WorkflowError(f"images differ in size ({listed}); choose size_policy resize or pad")
        if policy == "resize":
            height, width = images[0].shape[1:3]
            images = [functional.interpolate(i.movedim(-1, 1), size=(height, width), mode="bilinear",
                                             align_corners=False).movedim(1, -1) for i in images]  # fmt: skip
            masks = [functional.interpolate(m[:, None], size=(height, width), mode="bilinear",
                                            align_corners=False)[:, 0] for m in masks]  # fmt: skip
        else:
            height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
            images = [functional.pad(i, (0, 0, 0, width - i.shape[2], 0, height - i.shape[1])) for i in images]
            masks = [functional.pad(m, (0, width - m.shape[2], 0, height - m.shape[1]), value=1.0) for m in masks]
    return torch.cat(images), torch.cat(masks)


class DiscomfortFolderImageLoader:
    """A folder of images, as one batch or one image by index."""

    DESCRIPTION = (
        "Loads images from a folder (relative to ComfyUI's input folder), in natural order ('2' before '10'), EXIF "
        "orientation applied, MASK from transparency. mode 'batch' loads all of them as one IMAGE batch (sizes "
        "reconciled by size_policy); 'single' loads the one at `index`."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = ("IMAGE", "MASK", "STRING", "INT", "INT")
    RETURN_NAMES = ("image", "mask", "filename", "index", "count")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "folder": ("STRING", {"default": "", "tooltip": "Relative to ComfyUI's input folder."}),
            "filter": (list(FILTERS), {"default": "images"}),
            "custom_pattern": ("STRING", {"default": "", "tooltip": "Glob patterns for 'custom', comma-separated."}),
            "mode": (["single", "batch"], {"default": "single"}),
            "index": ("INT", {"default": 0, "min": 0, "max": 10_000_000}),
            "size_policy": (list(SIZE_POLICIES), {"default": "error"}),
            "unreadable": (["error", "skip"], {"default": "error", "tooltip": "Unreadable files: stop, or skip."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}  # fmt: skip

    @classmethod
    def IS_CHANGED(cls, folder: str = "", filter: str = "images", custom_pattern: str = "", **_: Any) -> str:
        # The folder's contents, not just its name: a new or changed file means a new result.
        try:
            files = list_images(resolve_folder(folder), filter, custom_pattern)
        except (DiscomfortError, OSError):
            return ""
        return json.dumps([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])

    def load(self, folder: str, filter: str, custom_pattern: str, mode: str, index: int, size_policy: str,
             unreadable: str, unique_id: str = "?") -> tuple:  # fmt: skip
        path, files = _folder_files(folder, filter, custom_pattern, f"node {unique_id} (DiscomfortFolderImageLoader)")
        if not files:
            raise WorkflowError(f"folder {path} has no files matching filter {filter!r}")
        if mode == "single":
            if index >= len(files):
                raise WorkflowError(f"index {index} is past the last image of {path} ({len(files)} images)")
            image, mask = load_image(files[index])
            return image, mask, files[index].name, index, len(files)
        images, masks, names = [], [], []
        for file in files:
            try:
                image, mask = load_image(file)
            except WorkflowError:
                if unreadable == "skip":
                    continue
                raise
            images.append(image)
            masks.append(mask)
            names.append(file.name)
        if not images:
            raise WorkflowError(f"no image in {path} could be read")
        image, mask = fit(images, masks, size_policy, names)
        return image, mask, ", ".join(names), 0, len(images)


class DiscomfortFolderLoop(DiscomfortLoop):
    """Runs a loop body once per image of a folder, one image in memory at a time."""

    DESCRIPTION = (
        "Runs the body tagged `body` once per image of a folder (natural order), in one prompt. Entry ports with "
        "the uids image, mask, filename, basename, index and total receive each file in turn; save it by name with "
        "Discomfort Save Image. cursor 'continue' picks up after the last file the previous prompt finished (it "
        "starts over when the folder's files change); start_index starts at a file of your choosing; on_error "
        "'skip' records a failing file in the status and goes on."
    )
    RETURN_TYPES = ("STRING", "INT", "INT", "BOOLEAN", "STRING", "INT")
    RETURN_NAMES = ("status", "processed", "skipped", "complete", "last_file", "total")
    OUTPUT_TOOLTIPS = (
        "JSON: processed, skipped (file and error), total, start, next_index, cursor",
        "files processed",
        "files skipped",
        "true when the last file of the folder was handled",
        "the name of the last file handled (empty when none was)",
        "how many files the folder has",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        folder_inputs = DiscomfortFolderImageLoader.INPUT_TYPES()["required"]
        return {
            "required": {
                "folder": folder_inputs["folder"],
                "filter": folder_inputs["filter"],
                "custom_pattern": folder_inputs["custom_pattern"],
                "body": ("STRING", {"default": "loop", "tooltip": "The tag that marks this loop's ports."}),
                "start_index": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                                        "tooltip": "Start at this file (0: the first, or where the cursor says)."}),
                "on_error": (["stop", "skip"], {"default": "stop"}),
            },
            "optional": {
                "workers": ("INT", {"default": 0, "min": 0, "max": 1024, "tooltip": "0: one file after the "
                            "other, in this process. N: fanned out over N Ray workers, each an embedded ComfyUI "
                            "(pip install 'discomfort[ray]'; the cluster is $RAY_ADDRESS, else a local Ray)."}),
                "cursor": (list(CURSOR_MODES), {"default": "reset", "tooltip": "reset: start at the first file "
                           "every time. continue: start after the last file the previous prompt of this workflow "
                           "finished in this folder (from the first again when its files changed). start_index, "
                           "when set, wins."}),
            },
            "hidden": DiscomfortLoop.INPUT_TYPES()["hidden"],
        }  # fmt: skip

    def run(self, folder: str, filter: str, custom_pattern: str, body: str, start_index: int, on_error: str,
            prompt: dict, unique_id: str, workers: int = 0, cursor: str = "reset", dynprompt: Any = None,
            **outside: Any) -> dict:  # fmt: skip
        from ..executor.engine import LoopSettings
        from ..executor.loop_node import feeds
        from .cursor import FolderCursor, Start, cursor_root

        self._called_as(unique_id, dynprompt, prompt)
        unique_id = self.loop_id
        hidden = compat.take_hidden(outside)

        if cursor not in CURSOR_MODES:
            raise SettingsError(f"loop {unique_id}: cursor must be {' or '.join(CURSOR_MODES)}, got {shown(cursor)}")
        path, files = _folder_files(folder, filter, custom_pattern, f"loop {unique_id}")
        if not files:
            raise WorkflowError(f"folder {path} has no files matching filter {filter!r}")
        plan = self.plan(prompt, unique_id, {"body": body})
        place = FolderCursor(cursor_root(), path, f"{unique_id}:{plan.fingerprint}", files)
        if start_index:
            start = Start(min(start_index, len(files)), f"start_index {start_index}")
        elif cursor == "continue":
            start = place.start()
        else:
            start = Start(0, "reset: from the first file")
        todo = files[start.index :]

        def outputs(done: int, skipped: list[tuple[int, str]]) -> tuple[Any, ...]:
            failed = [{"file": todo[iteration - 1].name, "error": why} for iteration, why in skipped]
            report = {"processed": done - len(failed), "skipped": failed, "total": len(files), "start": start.index,
                      "next_index": start.index + done, "cursor": start.why}  # fmt: skip
            return (json.dumps(report), done - len(failed), len(failed), start.index + done >= len(files),
                    todo[done - 1].name if done else "", len(files))  # fmt: skip

        if not todo:  # the cursor or start_index is past the last file: nothing is left to do
            place.advance(start.index)
            return {"ui": {}, "result": outputs(0, [])}
        settings = LoopSettings(len(todo), on_error=on_error)
        per_iteration, fan_out = None, None
        if workers:
            from ..executor import fanout

            items = fanout.folder_items(todo, start.index, len(files))
            fan_out = (fanout.check_items(plan, items, {}), int(workers))
        else:
            loaded = _LastLoaded(todo)
            makers = {"image": lambda i: loaded(i)[0], "mask": lambda i: loaded(i)[1],
                      "filename": lambda i: todo[i].name, "basename": lambda i: todo[i].stem,
                      "index": lambda i: start.index + i, "total": lambda i: len(files)}  # fmt: skip
            per_iteration = {uid: make for uid, make in makers.items() if uid in plan.entries}

        def results(record: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            return outputs(record.iterations, record.skipped), {}

        # Every finished file moves the cursor, so a prompt that stops (cancelled, failed, killed) is continued
        # after its last finished file.
        return self.loop(plan, settings, unique_id, hidden, results, initial=feeds(outside),
                         per_iteration=per_iteration, fan_out=fan_out, prompt=prompt,
                         after_iteration=lambda done: place.advance(start.index + done))  # fmt: skip


def _folder_files(folder: Any, filter: str, custom_pattern: Any, where: str) -> tuple[Path, list[Path]]:
    """The folder a node names and its matching files; errors name the node (`where`)."""
    try:
        path = resolve_folder(folder)
        return path, list_images(path, filter, custom_pattern)
    except SettingsError as error:
        raise SettingsError(f"{where}: {error}") from None


class _LastLoaded:
    """Loads file i once for both the image and the mask entry, and keeps nothing older."""

    def __init__(self, files: list[Path]):
        self.files, self.index, self.value = files, None, None

    def __call__(self, index: int) -> tuple[Any, Any]:
        if index != self.index:
            self.index, self.value = None, None  # drop the previous image before loading the next
            self.value, self.index = load_image(self.files[index]), index
        return self.value
