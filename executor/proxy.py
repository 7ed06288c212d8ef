"""The server an inner run talks to, so that the user's ComfyUI never sees the loop's private prompts.

ComfyUI's frontend keys its whole execution state on prompt ids and node ids: an inner `execution_start` would
make it follow the inner prompt, an inner `execution_success` would clear the outer one's progress, and inner
node ids would light up unrelated nodes of the outer graph. So the proxy drops the inner lifecycle, and re-addresses
what is worth showing (UI outputs such as saved images, previews, progress text) to the loop node of the outer
prompt. The executor writes `client_id` and `last_node_id` on its server; here that touches only the proxy.
"""

from __future__ import annotations

import struct
from typing import Any

# Binary websocket events (ComfyUI's protocol.BinaryEventTypes; stable since 2023).
PREVIEW_IMAGE_WITH_METADATA = 4
TEXT = 3

DROPPED = frozenset(
    {
        "execution_start",
        "execution_cached",
        "execution_success",
        "execution_error",  # the loop raises it as one exception instead
        "execution_interrupted",
        "executing",  # the outer run already shows the loop node as executing
        "progress_state",  # would replace the outer prompt's whole progress map
    }
)


class ProxyServer:
    """Stands between an inner PromptExecutor and the real server (or the headless one)."""

    def __init__(self, real: Any, outer_prompt_id: str | None, loop_node_id: str, display_node_id: str | None = None):
        self.real = real
        self.outer_prompt_id = outer_prompt_id
        self.loop_node_id = loop_node_id
        self.display_node_id = display_node_id or loop_node_id
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id = outer_prompt_id
        # WebUIProgressHandler asks the feature flags of the client, which live on the real server.
        self.sockets_metadata = getattr(real, "sockets_metadata", {})

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        if self.real is None or event in DROPPED:
            return
        if event == "executed":
            data = {**data, "node": self.loop_node_id, "display_node": self.display_node_id,
                    "prompt_id": self.outer_prompt_id}  # fmt: skip
        elif event == PREVIEW_IMAGE_WITH_METADATA:
            image, metadata = data
            data = (image, {**metadata, "node_id": self.loop_node_id, "display_node_id": self.display_node_id,
                            "real_node_id": self.loop_node_id, "parent_node_id": None,
                            "prompt_id": self.outer_prompt_id})  # fmt: skip
        elif event == TEXT and isinstance(data, (bytes, bytearray)):
            data = self._readdress_text(bytes(data))
        elif isinstance(data, dict) and "prompt_id" in data:
            data = {**data, "prompt_id": self.outer_prompt_id}
        self.real.send_sync(event, data, sid)

    def send_progress_text(self, text: str | bytes, node_id: str, sid: str | None = None) -> None:
        if self.real is not None and hasattr(self.real, "send_progress_text"):
            self.real.send_progress_text(text, self.display_node_id, sid)

    def queue_updated(self) -> None:
        pass

    def _readdress_text(self, message: bytes) -> bytes:
        (length,) = struct.unpack(">I", message[:4])
        node_id = self.display_node_id.encode()
        return struct.pack(">I", len(node_id)) + node_id + message[4 + length :]
