"""The internal nodes a loop body is rewritten with, and the registry of running loops they talk to.

A carry-in node takes its value from the run its token names; a carry-out node hands its value to that run. Values
pass by reference: nothing is copied or serialized on the way. Tokens are ``<run id>/<uid>/<version>``: the version
changes exactly when the value does, so ComfyUI's cache re-runs what depends on a changed value and nothing else.
"""

from __future__ import annotations

import sys
import threading
import types
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..errors import DiscomfortError
from ..ports.anytype import ANY


@dataclass
class CarryRun:
    """One loop run's mailbox: values going into the body, and values the body gave back this iteration."""

    id: str
    loop_id: str
    taken: dict[str, Any] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)
    # uids whose carry-ins pass on what feeds them (iteration 0 of a PASSTHRU entry). A set rather than a sentinel
    # value: the carry nodes may come from another copy of this module (see process_wide).
    from_feeder: set[str] = field(default_factory=set)

    def token(self, uid: str, version: int) -> str:
        return f"{self.id}/{uid}/{version}"

    def offer(self, uid: str, value: Any) -> None:
        self.taken[uid] = value
        self.from_feeder.discard(uid)

    def offer_feeder(self, uid: str) -> None:
        self.taken.pop(uid, None)
        self.from_feeder.add(uid)

    def start_iteration(self) -> None:
        """Forget what the last iteration gave; the carry-outs of the next one fill `given` again."""
        self.given = {}

    def feeding(self) -> frozenset[str]:
        """The uids whose carry-ins pass on what feeds them this iteration."""
        return frozenset(self.from_feeder)


class _Registry:
    def __init__(self) -> None:
        self._runs: dict[str, CarryRun] = {}
        self._lock = threading.Lock()

    def open(self, loop_id: str) -> CarryRun:
        run = CarryRun(uuid.uuid4().hex, loop_id)
        with self._lock:
            self._runs[run.id] = run
        return run

    def close(self, run: CarryRun) -> None:
        with self._lock:
            self._runs.pop(run.id, None)

    def lookup(self, token: str) -> tuple[CarryRun, str]:
        run_id, _, rest = token.partition("/")
        uid = rest.rpartition("/")[0]
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise DiscomfortError(f"no running loop owns the token {token!r}; carry nodes run only inside a loop")
        return run, uid

    def __len__(self) -> int:
        return len(self._runs)


def process_wide(name: str, make: Any) -> Any:
    """One object per process under `name`, made by `make()` on first use.

    Discomfort can be in one process twice (loaded from custom_nodes by ComfyUI, and imported as `discomfort` by a
    script): what one copy's engine registers must be found by the other copy's nodes.
    """
    holder = sys.modules.setdefault("_discomfort_shared", types.ModuleType("_discomfort_shared"))
    if not hasattr(holder, name):
        setattr(holder, name, make())
    return getattr(holder, name)


runs: _Registry = process_wide("carry_runs", _Registry)


class InternalNode:
    """Nodes Discomfort writes into prompts itself: kept out of the node library and search."""

    CATEGORY = "Discomfort/internal"
    DEV_ONLY = True  # what ComfyUI 0.36+ and its frontend hide from users
    DEPRECATED = True  # what frontend 1.32.9 (ComfyUI 0.3.75, which knows no DEV_ONLY) hides by default


class DiscomfortCarryIn(InternalNode):
    """Internal: stands where a loop's entry port stood, and gives the value the loop carries in."""

    DESCRIPTION = "Internal to Discomfort loops: the value a loop carries into its body. Not for use in graphs."
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "take"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"token": ("STRING", {"default": ""})}, "optional": {"initial": (ANY, {"lazy": True})}}

    def check_lazy_status(self, token: str, initial: Any = None) -> list[str]:
        run, uid = runs.lookup(token)
        return ["initial"] if uid in run.from_feeder else []

    def take(self, token: str, initial: Any = None) -> tuple[Any]:
        run, uid = runs.lookup(token)
        return (initial if uid in run.from_feeder else run.taken.get(uid),)


class DiscomfortCarryOut(InternalNode):
    """Internal: stands where a loop's exit port stood, hands the value to the loop, and passes it on to what the
    port fed (a preview of the exit shows every iteration's value)."""

    DESCRIPTION = "Internal to Discomfort loops: the value a loop's body gives back. Not for use in graphs."
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    OUTPUT_NODE = True
    FUNCTION = "give"
    # What feeds an exit may be one of ComfyUI's lists (an accumulating End Loop, a node with OUTPUT_IS_LIST): the
    # exit gives the whole list, not its last item, and passes it on as the same list.
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"token": ("STRING", {"default": ""}), "value": (ANY, {})}}

    def give(self, token: list[str], value: list[Any]) -> tuple[list[Any]]:
        run, uid = runs.lookup(token[0])
        run.given[uid] = value[0] if len(value) == 1 else list(value)
        return (list(value),)
