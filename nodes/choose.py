"""Choosing between two texts by a boolean: how a measure picks the workflow file a conditional pipeline runs next."""

from __future__ import annotations

from typing import Any


class DiscomfortChoose:
    """`if_true` when `condition` is true, else `if_false`."""

    DESCRIPTION = (
        "Gives `if_true` when `condition` is true, else `if_false`. Link it to a DiscomfortPort with the uid `next` "
        "in a workflow file, and it picks the file the next iteration of a Discomfort Workflow Loop runs (say, "
        "`settled` from Discomfort Image Difference: upscale.json when true, refine.json when not); empty or "
        "'done' ends the loop."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "choose"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "condition": ("BOOLEAN", {"default": False, "tooltip": "Which text to give; link a measure here."}),
                "if_true": ("STRING", {"default": "", "tooltip": "Given when the condition is true."}),
                "if_false": ("STRING", {"default": "", "tooltip": "Given when the condition is false."}),
            }
        }

    def choose(self, condition: bool, if_true: str, if_false: str) -> tuple[str]:
        return (if_true if condition else if_false,)
