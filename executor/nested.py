"""Running a body prompt on a private PromptExecutor from inside a running node.

A node already runs inside the prompt worker's event loop, so it cannot call `PromptExecutor.execute()`; and an
async node that awaited `execute_async` would let the outer scheduler run other nodes while the inner run has
swapped ComfyUI's globals. So each inner run goes to an event loop of the runner's own, run to completion on the
node's thread with the outer loop set aside, while the outer run waits, as it would for a long sampler. Around
every inner run the globals listed in `compat.global_state_accessors` are saved and restored, and progress from
inside the body is re-addressed to the loop node.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import weakref
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any

from ..errors import BodyError, DiscomfortError, LoopError, PromptValidationError
from ..ports.model import MAX_DEPTH
from . import compat
from .embedded import describe_validation_error
from .proxy import ProxyServer

VALIDATED_KEPT = 16  # validated bodies a runner keeps (one per structure it ran)
LANES_KEPT = 8  # sibling runners a runner keeps, one per workflow of a conditional pipeline, each with its cache

_depth = threading.local()  # how many loops enclose the code running on this thread
_running = threading.local()  # the proxies of the inner runs on this thread, innermost last


def current_depth() -> int:
    return getattr(_depth, "value", 0)


def enclosing_proxy() -> ProxyServer | None:
    """The server of the inner run this code runs in (a loop nested in another talks to its enclosing loop's
    proxy, so that what it shows travels up through every level), or None outside any loop."""
    stack = getattr(_running, "proxies", None)
    return stack[-1] if stack else None


class _PrivateLoop:
    """An event loop that runs one coroutine at a time to completion on the calling thread, even from a coroutine
    (the calling node's loop is set aside meanwhile: `compat.outer_loop_set_aside`). An earlier design gave each
    runner a thread with a loop of its own; handing every iteration to that thread and back cost 90 µs, a third of
    a cheap iteration."""

    def __init__(self, depth: int):
        self.depth = depth
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Any) -> Any:
        enclosing = current_depth()
        _depth.value = self.depth
        try:
            with compat.outer_loop_set_aside():
                return self.loop.run_until_complete(coroutine)
        except BaseException as error:
            if not compat.loop_survives(error):  # a fresh loop does not inherit the orphaned task
                self.loop.close()
                self.loop = asyncio.new_event_loop()
            raise
        finally:
            _depth.value = enclosing

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.close()


class NestedRunner:
    """One loop node's private ComfyUI: an executor with a CLASSIC cache, a proxy server and an event loop.

    Reused across iterations and across runs of the loop node, so loaders inside the body run once.
    """

    def __init__(self, loop_node_id: str):
        depth = current_depth() + 1
        if depth > MAX_DEPTH:
            raise DiscomfortError(f"loop {loop_node_id}: loops are nested more than {MAX_DEPTH} deep")
        import execution

        self.loop_node_id = loop_node_id
        self.proxy = ProxyServer(None, None, loop_node_id)
        self.executor = compat.capturing_executor_class()(self.proxy, cache_type=execution.CacheType.CLASSIC,
                                                          cache_args=compat.cache_args())  # fmt: skip
        self._loop = _PrivateLoop(depth)
        self._validated: OrderedDict[str, tuple[dict[str, Any], list[str]]] = OrderedDict()
        self._lanes: OrderedDict[str, NestedRunner] = OrderedDict()
        self._binding: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._finalizer = weakref.finalize(self, self._loop.close)

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
        self._finalizer()

    def lane(self, key: str) -> NestedRunner:
        """A sibling runner for the body `key` names (its structure), bound as this one is, kept across runs.

        ComfyUI's CLASSIC cache keeps only the outputs of the prompt it ran last, so one executor running the
        files of a conditional pipeline in turn would load every file's models again at each switch. Each file
        runs in a lane of its own instead: its loaders stay cached while the other files run.
        """
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = NestedRunner(self.loop_node_id)
            if self._binding is not None:
                args, options = self._binding
                lane.bind(*args, **options)
            while len(self._lanes) > LANES_KEPT:
                self._lanes.popitem(last=False)[1].close()
        self._lanes.move_to_end(key)
        return lane

    def bind(self, real_server: Any, outer_prompt_id: str | None, display_node_id: str | None = None,
             visible: Collection[str] = ()) -> None:  # fmt: skip
        """Address what the body shows to the run around it: nodes of the user's graph (`visible`) as themselves,
        anything else (outputs, previews, progress) on the loop node."""
        self._binding = ((real_server, outer_prompt_id, display_node_id), {"visible": visible})
        for lane in self._lanes.values():
            lane.bind(real_server, outer_prompt_id, display_node_id, visible)
        proxy = self.proxy
        proxy.real = real_server
        proxy.outer_prompt_id = outer_prompt_id
        proxy.last_prompt_id = outer_prompt_id
        proxy.display_node_id = display_node_id or self.loop_node_id
        proxy.sockets_metadata = getattr(real_server, "sockets_metadata", {})
        proxy.visible = visible if isinstance(visible, frozenset) else frozenset(visible)
        proxy.outer_progress = compat.progress_registry()

    def validate(self, prompt: dict[str, Any], prompt_id: str) -> list[str]:
        """Validate a body once (ComfyUI also coerces widget values in place); return its output node ids."""
        import execution

        with _PreservedGlobals():
            valid, error, outputs, node_errors = self._loop.run(execution.validate_prompt(prompt_id, prompt, None))
        # ComfyUI runs what validated and leaves out the rest; a body that cannot run whole is refused instead.
        if not valid or node_errors:
            message = describe_validation_error(prompt, error, node_errors)
            if compat.escapes_native_loop(node_errors):
                message += (
                    "; a native loop's body (from Start Loop to End Loop) may hold no output node and no Discomfort "
                    "exit port: take the value out after End Loop, and link side effects into End Loop's "
                    "terminations"
                )
            raise PromptValidationError(message, node_errors)
        return list(outputs)

    def validated(self, key: str, prompt: Mapping[str, Any], prompt_id: str) -> tuple[dict[str, Any], list[str]]:
        """A validated copy of `prompt` and its output node ids, kept by `key` (the body's structure): a loop run
        again, an inner loop once per iteration of the loop around it, is validated once."""
        if key in self._validated:
            self._validated.move_to_end(key)
            return self._validated[key]
        template = copy.deepcopy(dict(prompt))  # validation coerces widget values in place
        found = self._validated[key] = (template, self.validate(template, prompt_id))
        while len(self._validated) > VALIDATED_KEPT:
            self._validated.popitem(last=False)
        return found

    def run(self, prompt: dict[str, Any], prompt_id: str, outputs: list[str], extra_data: Mapping[str, Any]) -> None:
        """Run one body prompt to the end; raise `BodyError`, or ComfyUI's interrupt exception, if it fails."""
        executor = self.executor
        executor.failure = None
        self.proxy.cached = set()
        stack = _running.__dict__.setdefault("proxies", [])
        stack.append(self.proxy)
        try:
            with _PreservedGlobals(), _ProgressReaddressed(self.proxy), compat.outer_ram_release_kept():
                self._loop.run(self._execute(prompt, prompt_id, outputs, dict(extra_data)))
        finally:
            stack.pop()
        if executor.failure is not None:
            error, original = executor.failure
            if compat.is_interrupt(original):
                raise original
            raise _body_error(prompt, error, original)

    async def _execute(self, prompt, prompt_id, outputs, extra_data) -> None:
        # execute_async clears the interrupt flag first thing; an interrupt that arrived since the caller's
        # check would be lost, so look once more right before handing over.
        compat.raise_if_interrupted()
        await self.executor.execute_async(prompt, prompt_id, extra_data, outputs)

    def ui_outputs(self) -> dict[str, dict[str, Any]]:
        """What the body's nodes showed in the last run, by the node the canvas shows it on (node id ->
        {"images": [...], ...}); outputs served from the cache were shown when they first ran, and are left out."""
        result = getattr(self.executor, "history_result", {})
        meta = result.get("meta", {})
        shown: dict[str, dict[str, Any]] = {}
        for node_id, ui in result.get("outputs", {}).items():
            if node_id not in self.proxy.cached and ui:
                # As the canvas showed it: a workflow file's node on the loop node, not on a node sharing its id.
                display = self.proxy.shown((meta.get(node_id) or {}).get("display_node") or node_id)
                merged = shown.setdefault(display, {})
                for key, items in ui.items():
                    merged[key] = [*merged.get(key, []), *items] if isinstance(items, (list, tuple)) else items
        return shown

    def cached_node_count(self) -> int:
        """How many node outputs the private cache holds (for tests and benchmarks)."""
        return len(getattr(self.executor.caches.outputs, "cache", {}))


def _body_error(prompt: Mapping[str, Any], error: Mapping[str, Any], original: BaseException | None) -> BodyError:
    """The failure of one body node, named as the user's graph names it. A failing loop inside the body reports the
    node that failed inside it (the deepest one), so the error lands on that node."""
    node_id = error.get("node_id")
    node = prompt.get(node_id) or {}
    class_type = node.get("class_type")
    title = (node.get("_meta") or {}).get("title")
    message = str(error.get("exception_message", "")).strip() or type(original).__name__
    type_name = type(original).__name__ if original is not None else error.get("exception_type")
    named = f"node {node_id}" + (f" {title!r}" if title and title != class_type else "") + f" ({class_type})"
    details: dict[str, Any] = {
        "node_id": node_id,
        "class_type": class_type,
        "traceback": error.get("traceback"),
        "exception_type": error.get("exception_type"),
        "inputs": error.get("current_inputs"),
    }
    if isinstance(original, LoopError) and original.node_id is not None:
        details.update(node_id=original.node_id, class_type=original.class_type, traceback=original.traceback,
                       inputs=original.inputs)  # fmt: skip
        return BodyError(f"{named} failed: {message}", original=original, **details)
    return BodyError(f"{named} failed: {type_name}: {message}", original=original, **details)


class _PreservedGlobals:
    """Saves ComfyUI's process-global state on entry and puts it back on exit, whatever happened between."""

    def __enter__(self) -> _PreservedGlobals:
        self._saved = [(setter, getter()) for _, getter, setter in compat.global_state_accessors()]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for setter, value in reversed(self._saved):
            setter(value)


class _ProgressReaddressed:
    """While a body runs, progress its nodes report through ComfyUI's global hook is shown on the loop node."""

    def __init__(self, proxy: ProxyServer):
        self.proxy = proxy

    def __enter__(self) -> _ProgressReaddressed:
        import comfy.utils

        original = comfy.utils.PROGRESS_BAR_HOOK
        if original is not None:
            proxy = self.proxy

            def readdressed(value, total, preview, prompt_id=None, node_id=None):
                if node_id is None:
                    context = compat.executing_context()
                    node_id = context.node_id if context is not None else None
                return original(value, total, preview, prompt_id=proxy.outer_prompt_id, node_id=proxy.shown(node_id))

            comfy.utils.set_progress_bar_global_hook(readdressed)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass  # _PreservedGlobals restores the hook
