"""Saving an image under a name of the workflow's choosing (the input file's own name, in a folder loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SettingsError, WorkflowError
from ..workflow.files import checked_name, resolve_under


def to_pil(frame: Any) -> Any:
    """One IMAGE frame [H, W, C] in 0..1 as an 8-bit PIL image."""
    import numpy as np
    from PIL import Image

    pixels = np.clip(frame.detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def write_png(frame: Any, path: Path) -> None:
    """One IMAGE frame as a PNG, written under a temporary name and renamed into place, so a reader never sees
    half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    to_pil(frame).save(temporary, format="PNG")
    temporary.replace(path)


def preview_images(value: Any, prefix: str) -> list[dict[str, str]]:
    """`value`, when it is an IMAGE batch, saved as previews in ComfyUI's temp folder the way its PreviewImage node
    does (what the frontend shows on a node); nothing for any other value."""
    from ..serialization.codec import is_tensor

    if not (is_tensor(value) and value.ndim == 4 and value.shape[-1] in (1, 3, 4)):
        return []
    import nodes

    return list(nodes.PreviewImage().save_images(value, filename_prefix=prefix)["ui"]["images"])


class DiscomfortSaveImage:
    """Saves each image as <output>/<subfolder>/<filename>.png, replacing an older file of that name."""

    DESCRIPTION = (
        "Saves images under a given name (its extension replaced by .png) in a subfolder of ComfyUI's output "
        "folder; a batch gets _1, _2... Made for folder loops: link the filename entry port here."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "images": ("IMAGE",),
            "filename": ("STRING", {"default": "image"}),
            "subfolder": ("STRING", {"default": "discomfort"}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}  # fmt: skip

    def save(self, images: Any, filename: str, subfolder: str, unique_id: str = "?") -> dict:
        import folder_paths

        where = f"node {unique_id} (DiscomfortSaveImage)"
        root = Path(folder_paths.get_output_directory()).resolve()
        try:
            stem = Path(checked_name(filename, "filename")).stem
            subfolder = checked_name(subfolder, "subfolder")
        except WorkflowError as error:
            raise SettingsError(f"{where}: {error}") from None
        if not stem:
            raise SettingsError(f"{where}: cannot save {filename!r}: the name is empty")
        results = []
        for index, image in enumerate(images):
            name = f"{stem}.png" if len(images) == 1 else f"{stem}_{index + 1}.png"
            try:
                path = resolve_under(root, str(Path(subfolder) / name), "saved image")
            except WorkflowError as error:
                raise SettingsError(f"{where}: cannot save {filename!r} in {subfolder!r}: {error}") from None
            path.parent.mkdir(parents=True, exist_ok=True)
            write_png(image, path)
            results.append({"filename": name, "subfolder": str(path.parent.relative_to(root)), "type": "output"})
        return {"ui": {"images": results}}
