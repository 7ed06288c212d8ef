"""Long video in chunks: each chunk starts from the last frames of the one before, and the seams are joined."""

from __future__ import annotations

from typing import Any


class DiscomfortLastFrames:
    """The last `count` frames of a batch: the context the next chunk starts from."""

    DESCRIPTION = "The last `count` frames of an IMAGE batch (all of them if it has fewer)."
    CATEGORY = "Discomfort/video"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    FUNCTION = "last"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"images": ("IMAGE",), "count": ("INT", {"default": 8, "min": 1, "max": 100_000})}}

    def last(self, images: Any, count: int) -> tuple[Any]:
        return (images[-count:],)


class DiscomfortJoinChunks:
    """A loop's accumulated chunks as one video: each chunk after the first loses the `overlap` frames it
    repeats from the chunk before."""

    DESCRIPTION = (
        "Joins chunks accumulated along the batch (each `chunk_length` frames long, each after the first starting "
        "with `overlap` frames of the one before) into one clip without the repeated frames: "
        "chunks x chunk_length - (chunks - 1) x overlap frames."
    )
    CATEGORY = "Discomfort/video"
    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("frames", "count")
    FUNCTION = "join"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "chunks": ("IMAGE",),
            "chunk_length": ("INT", {"default": 33, "min": 1, "max": 100_000}),
            "overlap": ("INT", {"default": 8, "min": 0, "max": 100_000}),
        }}  # fmt: skip

    def join(self, chunks: Any, chunk_length: int, overlap: int) -> tuple[Any, int]:
        import torch

        if overlap >= chunk_length:
            raise ValueError(f"overlap {overlap} must be shorter than chunk_length {chunk_length}")
        if len(chunks) % chunk_length:
            raise ValueError(f"{len(chunks)} frames are not whole chunks of {chunk_length}")
        starts = range(0, len(chunks), chunk_length)
        parts = [chunks[start + (overlap if start else 0) : start + chunk_length] for start in starts]
        joined = torch.cat(parts)
        return joined, len(joined)
