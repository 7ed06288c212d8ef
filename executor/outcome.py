"""What a finished loop hands back to the run around it, and how that run reports a loop's failure.

ComfyUI's history of a prompt keeps what the nodes of the prompt's own run showed; a body's nodes run in the
loop's private executor. So when the loop ends it returns, beside its results, a small expansion: one
`DiscomfortReplay` node per body node that showed something, displayed as that node, which ComfyUI runs and
records like any of its own. After a failure or a cancel a `DiscomfortRaise` node follows them and raises the
original exception, so the history keeps what the finished iterations saved and the prompt still ends failed (or
interrupted).

ComfyUI names the node that raised in its `execution_error` message, which for a body node's failure is the loop
node. The loop registers the body node instead (`name_failure`), and `amend`, which every server a loop reports to
passes its messages through (`install` on ComfyUI's, natively on the headless one), names that node: the canvas
outlines the node at fault. The replays do not show as running there; their `executed` messages leave every
iteration's outputs on the node that made them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..ports.anytype import ANY
from .carry import InternalNode, process_wide

REPLAY = "DiscomfortReplay"
RAISE = "DiscomfortRaise"


class _Failures:
    """Body nodes to name in place of the loop node that raised, by (prompt id, loop node id); replay node ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._named: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.replays: set[str] = set()

    def name(self, prompt_id: str | None, loop_id: str, details: dict[str, Any]) -> None:
        with self._lock:
            self._named[(prompt_id, loop_id)] = details

    def take(self, prompt_id: str | None, loop_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._named.pop((prompt_id, loop_id), None)


failures: _Failures = process_wide("loop_failures", _Failures)


def name_failure(prompt_id: str | None, loop_id: str, node_id: str, class_type: str | None,
                 traceback: list[str] | None = None, inputs: dict | None = None) -> None:  # fmt: skip
    """Have the `execution_error` that loop `loop_id` of prompt `prompt_id` is about to cause name body node
    `node_id` instead, with its class, traceback and inputs."""
    details: dict[str, Any] = {"node_id": node_id, "node_type": class_type}
    if traceback:
        details["traceback"] = traceback
    if inputs is not None:
        details["current_inputs"] = inputs
    failures.name(prompt_id, loop_id, details)


def amend(event: Any, data: Any) -> bool:
    """Amend a message on its way to the frontend (in place: ComfyUI keeps the same dict as the prompt's status);
    False when it is not to be sent at all."""
    if event == "executing" and isinstance(data, Mapping) and data.get("node") in failures.replays:
        return False  # a replay is not work the user asked for; its `executed` shows every iteration's outputs
    if event == "execution_error" and isinstance(data, dict):
        details = failures.take(data.get("prompt_id"), str(data.get("node_id")))
        if details:
            data.update(details)
    return True


def install(server: Any) -> None:
    """Pass every message ComfyUI's server sends through `amend`, and progress text that a node inside a body
    sends to the server itself (ComfyUI's own loops do: "Iteration k / N") through that body's proxy, which shows
    it on the node the canvas has (once per server object).

    ComfyUI offers no hook on outgoing messages; `send_sync` and `send_progress_text` are the doors they go
    through, so they are wrapped on this one server object (not on the class), keeping whatever they were.
    """
    original, original_text = server.send_sync, getattr(server, "send_progress_text", None)

    def send_sync(event: Any, data: Any, sid: Any = None) -> Any:
        if amend(event, data):
            return original(event, data, sid)
        return None

    def send_progress_text(text: Any, node_id: str, sid: Any = None) -> Any:
        from .nested import enclosing_proxy

        proxy = None if getattr(_routing, "active", False) else enclosing_proxy()
        if proxy is None:
            return original_text(text, node_id, sid)
        _routing.active = True  # the proxy hands it back to this server: then it is sent
        try:
            return proxy.send_progress_text(text, node_id, sid)
        finally:
            _routing.active = False

    send_sync.discomfort_amends = True  # type: ignore[attr-defined]
    send_progress_text.discomfort_amends = True  # type: ignore[attr-defined]
    if not getattr(original, "discomfort_amends", False):
        server.send_sync = send_sync
    if original_text is not None and not getattr(original_text, "discomfort_amends", False):
        server.send_progress_text = send_progress_text


_routing = threading.local()  # set while a body's proxy hands progress text back to the server


def expansion(loop_id: str, shown: Mapping[str, Mapping[str, list[Any]]], failure: BaseException | None,
              outputs: int) -> tuple[dict[str, Any], tuple[Any, ...] | None]:  # fmt: skip
    """The nodes a loop hands back (a replay per node in `shown`, then a raise of `failure` if any), and the loop's
    results as links to the raise (None when the loop succeeded: its own results stand)."""
    graph: dict[str, Any] = {}
    for node_id, ui in shown.items():
        replay_id = f"{loop_id}.shown.{node_id}"
        failures.replays.add(replay_id)
        graph[replay_id] = {"class_type": REPLAY, "inputs": {"ui": {key: list(items) for key, items in ui.items()}},
                            "override_display_id": node_id}  # fmt: skip
    if failure is None:
        return graph, None
    after = {f"after_{index}": [replay_id, 0] for index, replay_id in enumerate(graph)}
    raise_id = f"{loop_id}.failed"
    graph[raise_id] = {"class_type": RAISE, "inputs": {"failure": failure, **after}}
    return graph, tuple([raise_id, 0] for _ in range(outputs))


class DiscomfortReplay(InternalNode):
    """Internal: shows again what a body node showed over a loop's iterations, so the prompt's history keeps it."""

    DESCRIPTION = "Internal to Discomfort loops: what a body node showed, for the history. Not for use in graphs."
    RETURN_TYPES = ("INT",)
    OUTPUT_NODE = True
    FUNCTION = "replay"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"ui": (ANY, {})}}

    def replay(self, ui: dict[str, list[Any]]) -> dict[str, Any]:
        return {"ui": ui, "result": (sum(len(items) for items in ui.values()),)}


class DiscomfortRaise(InternalNode):
    """Internal: raises a loop's failure once what its finished iterations showed is in the history."""

    DESCRIPTION = "Internal to Discomfort loops: a loop's failure, raised after its outputs. Not for use in graphs."
    RETURN_TYPES = (ANY,)
    OUTPUT_NODE = True
    FUNCTION = "fail"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"failure": (ANY, {})}}

    def fail(self, failure: BaseException, **after: Any) -> tuple[Any]:
        raise failure
