"""Discomfort on a running ComfyUI server: every queued prompt prepared through its on-prompt hook, and the
messages it sends amended on their way out.

ComfyUI passes each POST /prompt body through `PromptServer.on_prompt_handlers` before validating it; that is where
a loop's body is moved into its loop node (`plan.prepare_prompt`), so the prompt's own run never executes it, and
where "Queue selected output nodes" on a node inside a body becomes a request for the loop that runs it.
"""

from __future__ import annotations

import sys
from typing import Any

from . import compat, outcome
from .plan import LOOP_CLASSES, PARKED, nested_ids, prepare_prompt

PARTIAL_TARGETS = "partial_execution_targets"  # the output nodes a partial run asks for (ComfyUI's /prompt field)


def on_prompt(json_data: dict[str, Any]) -> dict[str, Any]:
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict) or not any(
        isinstance(node, dict) and node.get("class_type") in LOOP_CLASSES for node in prompt.values()
    ):
        return json_data
    server = getattr(sys.modules.get("server"), "PromptServer", None)
    prepared = prepare_prompt(compat.apply_node_replacements(prompt, getattr(server, "instance", None)))
    json_data = {**json_data, "prompt": prepared}
    targets = json_data.get(PARTIAL_TARGETS)
    if isinstance(targets, list):
        json_data[PARTIAL_TARGETS] = loop_targets(prepared, targets)
    return json_data


on_prompt.discomfort_hook = True  # type: ignore[attr-defined]


def loop_targets(prepared: dict[str, Any], targets: list[Any]) -> list[Any]:
    """Partial-run targets with each node parked in a loop's body replaced by that (outermost) loop: the body runs
    only inside its loop, so running the loop is how its output nodes run."""
    parked_in = {}
    for loop_id, node in prepared.items():
        body = (node.get(PARKED) or {}).get("body") if isinstance(node, dict) else None
        if body:
            parked_in.update(dict.fromkeys(nested_ids(body), loop_id))
    return list(dict.fromkeys(parked_in.get(str(target), target) for target in targets))


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
    outcome.install(instance)
    return True
