"""A node pack that uses ComfyUI's server while it is imported, as many published packs do.

At import it registers an HTTP route through the server's route-table decorator, an on-prompt handler and (0.33+)
a node replacement, so it loads only where `PromptServer.instance` is a real server when custom nodes load
(ComfyUI's main.py, and the embedded boot). Its node logs one line per run to a file named by a widget, and tells
the server it ran (an event, and progress text on itself); DiscomfortTestRetiredStamp, a node it no longer has,
is replaced by it.
"""

from __future__ import annotations

from aiohttp import web
from server import PromptServer

ROUTE = "/discomfort_testing/server_pack"
STAMP = "stamped on prompt"
REPLACED = "replaced"  # the stamp of a retired node's replacement
STAMPED: list[str] = []  # ids of the nodes the on-prompt handler stamped, every prompt


class AnyType(str):
    def __ne__(self, other: object) -> bool:
        return False


@PromptServer.instance.routes.get(ROUTE)
async def describe(request: web.Request) -> web.Response:
    return web.json_response({"stamped": len(STAMPED)})


def stamp(json_data: dict) -> dict:
    """Fills the `stamp` input of this pack's nodes, as packs that rewrite queued prompts do."""
    for node_id, node in (json_data.get("prompt") or {}).items():
        if isinstance(node, dict) and node.get("class_type") == "DiscomfortTestServerStamp":
            node.setdefault("inputs", {})["stamp"] = STAMP
            STAMPED.append(node_id)
    return json_data


PromptServer.instance.add_on_prompt_handler(stamp)


# A node the pack retired, replaced when a prompt holding it is queued, as packs register replacements.
_replacements = getattr(PromptServer.instance, "node_replace_manager", None)
if _replacements is not None:
    from comfy_api.latest import io

    _replacements.register(io.NodeReplace(
        new_node_id="DiscomfortTestServerStamp", old_node_id="DiscomfortTestRetiredStamp",
        input_mapping=[{"new_id": "value", "old_id": "item"}, {"new_id": "log", "old_id": "log"},
                       {"new_id": "stamp", "set_value": REPLACED}],
    ))  # fmt: skip


class DiscomfortTestServerStamp:
    """Passes a value on, appends its stamp to the log file, and sends it to the server's clients."""

    CATEGORY = "Discomfort/testing"
    RETURN_TYPES = (AnyType("*"),)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (AnyType("*"), {}), "log": ("STRING", {"default": ""}),
                             "stamp": ("STRING", {"default": "not stamped"})},
                "hidden": {"unique_id": "UNIQUE_ID"}}  # fmt: skip

    def run(self, value, log, stamp, unique_id=None):
        if log:
            with open(log, "a") as file:
                file.write(stamp + "\n")
        PromptServer.instance.send_sync("discomfort_testing.stamp", {"stamp": stamp})
        # As ComfyUI's own loops report "Iteration k / N": text shown on the node, sent straight to the server.
        PromptServer.instance.send_progress_text(stamp, unique_id)
        return (value,)


NODE_CLASS_MAPPINGS = {"DiscomfortTestServerStamp": DiscomfortTestServerStamp}
