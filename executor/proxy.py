"""The server an inner run talks to: it shows the body on the user's canvas without letting the loop's private
prompts confuse it.

ComfyUI's frontend keys its execution state on prompt ids and node ids: an inner `execution_start` would make it
follow the inner prompt, an inner `execution_success` (or `executing` with no node) would end the outer one. So the
proxy drops the inner lifecycle and sends the rest as part of the outer prompt: a body node the user's graph holds
(`visible`: an inline body keeps the ids of the user's graph) is shown as itself, running (`executing`,
`progress_state`, merged with the states of the run around it) and with its images (`executed`); anything else
(a workflow file's nodes, internal nodes) is shown on the loop node. The executor writes `client_id` and
`last_node_id` on its server; here that touches only the proxy.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from . import compat
from .outcome import amend

LOOP_MESSAGE = "discomfort.loop"  # what a loop says of its progress: node, iteration, total, state, timings
DROPPED = frozenset(
    {
        "execution_start",
        "execution_success",
        "execution_error",  # the loop raises it as one exception instead
        "execution_interrupted",
    }
)


class _EveryNode(frozenset):
    """`visible` for a run no canvas shows (the Python API, the CLI): every node is itself."""

    def __contains__(self, node_id: object) -> bool:
        return True


EVERY_NODE: frozenset[str] = _EveryNode()


class ProxyServer:
    """Stands between an inner PromptExecutor and the server of the run around it (the real one, the headless one,
    or the proxy of an enclosing loop)."""

    def __init__(self, real: Any, outer_prompt_id: str | None, loop_node_id: str, display_node_id: str | None = None):
        self.real = real
        self.outer_prompt_id = outer_prompt_id
        self.loop_node_id = loop_node_id
        self.display_node_id = display_node_id or loop_node_id
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id = outer_prompt_id
        self.visible: Collection[str] = frozenset()  # inner node ids the user's graph holds
        self.cached: set[str] = set()  # nodes the current inner run serves from its cache
        self.outer_progress: Any = None  # the progress registry of the run around this one
        # WebUIProgressHandler asks the feature flags of the client, which live on the real server.
        self.sockets_metadata = getattr(real, "sockets_metadata", {})

    def shown(self, node_id: str | None) -> str:
        """The node the canvas shows for inner node `node_id`: itself when the user's graph holds it, else the loop."""
        return node_id if node_id is not None and node_id in self.visible else self.display_node_id

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        if self.real is None or event in DROPPED or not amend(event, data):
            return
        if event == "execution_cached":
            self.cached = set(data.get("nodes") or ())
            return
        if event == "executing":
            node = data.get("node")
            if node is None or node not in self.visible:
                return  # the end of an inner run, or a node the canvas does not have: the loop is what runs
            data = {**data, "node": node, "display_node": node, "prompt_id": self.outer_prompt_id}
        elif event == "executed":
            if data.get("node") in self.cached:
                return  # shown already, when it first ran
            # Each iteration's outputs replace the last on the node; when the loop ends, its replay shows them all.
            # (Not the frontend's `merge`: on 1.32.9 two of its listeners concatenate into one object, so every
            # merged output would show twice.)
            node = self.shown(data.get("display_node") or data.get("node"))
            data = {**data, "node": node, "display_node": node, "prompt_id": self.outer_prompt_id}
        elif event == LOOP_MESSAGE:
            if data.get("node") not in self.visible:
                return  # a loop inside a workflow file: the workflow loop reports for it
            data = {**data, "prompt_id": self.outer_prompt_id}
        elif event == "progress_state":
            data = {"prompt_id": self.outer_prompt_id, "nodes": self._progress(data.get("nodes") or {})}
        elif event == compat.binary_event("PREVIEW_IMAGE_WITH_METADATA"):
            image, metadata = data
            node = self.shown(metadata.get("display_node_id") or metadata.get("node_id"))
            data = (image, {**metadata, "node_id": node, "display_node_id": node, "real_node_id": node,
                            "parent_node_id": None, "prompt_id": self.outer_prompt_id})  # fmt: skip
        elif event == compat.binary_event("TEXT") and isinstance(data, (bytes, bytearray)):
            data = compat.readdress_progress_text(bytes(data), self.shown)
        elif isinstance(data, dict) and "prompt_id" in data:
            data = {**data, "prompt_id": self.outer_prompt_id}
        self.real.send_sync(event, data, sid)

    def send_progress_text(self, text: str | bytes, node_id: str, sid: str | None = None) -> None:
        if self.real is not None and hasattr(self.real, "send_progress_text"):
            self.real.send_progress_text(text, self.shown(node_id), sid)

    def queue_updated(self) -> None:
        pass

    def _progress(self, inner: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The states of the run around this one, with those of the body nodes the canvas holds."""
        nodes = compat.progress_nodes(self.outer_progress, self.outer_prompt_id)
        for node_id, state in inner.items():
            shown = state.get("display_node_id") or node_id
            if shown in self.visible:
                nodes[shown] = {**state, "node_id": shown, "display_node_id": shown, "real_node_id": shown,
                                "parent_node_id": None, "prompt_id": self.outer_prompt_id}  # fmt: skip
        return nodes
