"""Measuring how much an image changed, to stop a refinement loop when it settles."""

from __future__ import annotations

from typing import Any


class DiscomfortImageDifference:
    """Mean absolute difference of two images (0..1), and whether it is below a threshold."""

    DESCRIPTION = (
        "How much two images differ: the mean absolute difference of their pixels (0 = identical, 1 = black vs "
        "white), and `settled` when it is below `threshold`. Feed it an iteration's input and output and give "
        "`settled` to an OUTPUT port named in the loop's stop_when."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = ("FLOAT", "BOOLEAN")
    RETURN_NAMES = ("difference", "settled")
    FUNCTION = "compare"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image_a": ("IMAGE",),
                "image_b": ("IMAGE",),
                "threshold": ("FLOAT", {"default": 0.002, "min": 0.0, "max": 1.0, "step": 0.0001}),
            }
        }

    def compare(self, image_a: Any, image_b: Any, threshold: float) -> tuple[float, bool]:
        if image_a.shape != image_b.shape:
            raise ValueError(f"images differ in shape: {tuple(image_a.shape)} and {tuple(image_b.shape)}")
        difference = float((image_a.float() - image_b.float()).abs().mean())
        return difference, difference < threshold
