"""Preparing every prompt queued on a running ComfyUI server, through its on-prompt hook.

ComfyUI passes each POST /prompt body through `PromptServer.on_prompt_handlers` before validating it; that is where
a loop's body is moved into its loop node (`plan.prepare_prompt`), so the prompt's own run never executes it.
"""

from __future__ import annotations

import sys
from typing import Any

from .plan import LOOP_CLASSES, prepare_prompt


def on_prompt(json_data: dict[str, Any]) -> dict[str, Any]:
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if isinstance(prompt, dict) and any(
        isinstance(node, dict) and node.get("class_type") in LOOP_CLASSES for node in prompt.values()
    ):
        return {**json_data, "prompt": prepare_prompt(prompt)}
    return json_data


on_prompt.discomfort_hook = True  # type: ignore[attr-defined]


def install() -> bool:
    """Hook into the server of the ComfyUI this module runs in, once; False when there is no such server."""
    server_module = sys.modules.get("server")  # only ever imported by ComfyUI itself; never import it here
    instance = getattr(getattr(server_module, "PromptServer", None), "instance", None)
    handlers = getattr(instance, "on_prompt_handlers", None)
    if handlers is None or not hasattr(instance, "add_on_prompt_handler"):
        return False
    # Two copies of Discomfort (a custom node and an import) prepare the same way; one hook is enough.
    if not any(getattr(handler, "discomfort_hook", False) for handler in handlers):
        instance.add_on_prompt_handler(on_prompt)
    return True
