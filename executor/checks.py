"""Problems found before a prompt runs, reported by ComfyUI's own validation on the node at fault.

When a queued prompt is prepared (`plan.prepare_prompt`), a loop whose body cannot work (a port with no uid, two
exits for one uid, a `stop_when` naming no exit, loops nested too deep) has each node at fault replaced by a
`DiscomfortCheck` that fails validation with the reason. ComfyUI then refuses the prompt at `/prompt` with
`node_errors` for those node ids, and the frontend outlines them in red, as it does for any invalid input.
"""

from __future__ import annotations

from typing import Any

from ..ports.anytype import ANY
from .carry import InternalNode


class DiscomfortCheck(InternalNode):
    """Internal: stands for a node at fault in a queued prompt; its validation fails with what is wrong."""

    DESCRIPTION = "Internal to Discomfort: a node whose loop cannot run, and why. Not for use in graphs."
    # As many sockets as the node it stands for (a loop node has 33): links to it must not fail validation themselves.
    RETURN_TYPES = (ANY,) * 64
    OUTPUT_NODE = True  # validated whatever is linked to it
    FUNCTION = "refuse"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"problem": ("STRING", {"default": ""})}}

    @classmethod
    def VALIDATE_INPUTS(cls, problem: str) -> str:
        return problem or "this node's loop cannot run"

    def refuse(self, problem: str) -> tuple[Any]:
        from ..errors import WorkflowError

        raise WorkflowError(problem)  # only reached if something skipped validation
