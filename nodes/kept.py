"""Reading back what a loop kept (its `keep` folder): the values a run accumulated, for the next workflow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SettingsError, WorkflowError
from ..ports.anytype import ANY
from ..serialization.kept import MANIFEST, KeptError, read_kept, read_manifest
from ..workflow.files import checked_name, resolve_under


def kept_folder(name: Any, where: str) -> Path:
    """The kept folder a workflow names, inside ComfyUI's output folder, as the loops' `keep` does."""
    import folder_paths

    try:
        name = checked_name(name, "folder").strip()
        if not name:
            raise WorkflowError("name the folder a loop kept its values in (its `keep` setting)")
        return resolve_under(folder_paths.get_output_directory(), name, "kept values folder", widget="folder")
    except WorkflowError as error:
        raise SettingsError(f"{where}: {error}") from None


class DiscomfortLoadKept:
    """One uid's values from the folder a loop kept them in."""

    DESCRIPTION = (
        "Loads what a Discomfort loop kept: set the loop's `keep` to a folder under ComfyUI's output folder, and "
        "after a successful run its accumulated values are stored there; this node gives one uid's (every "
        "iteration's value, joined as the loop's accumulated output gives them)."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = (ANY, "INT")
    RETURN_NAMES = ("value", "iterations")
    OUTPUT_TOOLTIPS = ("the uid's accumulated values, as the loop joined them", "how many iterations the run had")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "folder": ("STRING", {"default": "", "tooltip": "The loop's keep folder, relative to the output folder."}),
            "uid": ("STRING", {"default": "", "tooltip": "Which accumulated uid to load."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}  # fmt: skip

    @classmethod
    def IS_CHANGED(cls, folder: str = "", uid: str = "", **_: Any) -> str:
        # A later run replaces the folder as a whole, and with it the manifest.
        try:
            found = os.stat(kept_folder(folder, "") / MANIFEST)
        except (SettingsError, OSError):
            return ""
        return f"{found.st_ino}:{found.st_mtime_ns}:{found.st_size}"

    def load(self, folder: str, uid: str, unique_id: str = "?") -> tuple[Any, int]:
        where = f"node {unique_id} (DiscomfortLoadKept)"
        path = kept_folder(folder, where)
        uid = uid.strip() if isinstance(uid, str) else uid
        try:
            manifest = read_manifest(path)
            value = read_kept(path, uids=[uid])[uid]
        except KeptError as error:
            raise KeptError(f"{where}: {error}") from None
        return value, int(manifest.get("iterations") or 0)
