"""What differs between ComfyUI versions, found by looking rather than by version strings.

Covers 0.3.75 through the newest releases (comfyui-internals.md):
- `cache_args` keys: 0.3.75 reads "ram", 0.33+ also "ram_inactive"; `cache_args()` gives all of them.
- the interrupt exception derives from Exception on 0.3.75 and from BaseException since April 2026: it is
  taken from `comfy.model_management` and matched with isinstance, never by a blanket `except Exception`.
- process-global state that newer executors also write (preview method, RAM-release hook): saved only where
  it exists.
- output caches whose accessors became coroutines (0.33+), and `asset_manager` (0.38+): not needed, because
  values leave a body through carry-out sinks, never by reading an executor's cache, and the executor's
  default asset manager serves.
- the native `"*"` wildcard (newer versions): `ports.anytype.AnyType` is a wildcard on every version.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def cache_args() -> dict[str, float]:
    """`cache_args` every version accepts: 0.3.75 reads "ram" after each node, 0.33+ also "ram_inactive" at start."""
    return {"lru": 0, "ram": 0.0, "ram_inactive": 0.0}


def interrupt_exception() -> type[BaseException]:
    """ComfyUI's interrupt exception: an Exception on 0.3.75, a BaseException since April 2026."""
    import comfy.model_management

    return comfy.model_management.InterruptProcessingException


def is_interrupt(error: BaseException) -> bool:
    return isinstance(error, interrupt_exception())


def interrupt_requested() -> bool:
    """Whether Cancel was pressed, without consuming it (for a node that waits on something else meanwhile)."""
    import comfy.model_management

    return comfy.model_management.processing_interrupted()


def raise_if_interrupted() -> None:
    """Consume a pending interrupt and raise it. Each inner run clears the flag, so check before starting one."""
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()


def executing_context() -> Any:
    """The (prompt_id, node_id, list_index) of the node running in this thread, or None."""
    from comfy_execution.utils import get_executing_context

    return get_executing_context()


@functools.cache
def global_state_accessors() -> tuple[tuple[str, Callable[[], Any], Callable[[Any], None]], ...]:
    """Process-global state an inner run overwrites, as (name, get, set) triples; only what this version has.

    - the progress registry: execute_async replaces it, and the outer run's later progress would go to it;
    - the progress-bar hook: replaced during inner runs to re-address progress (see nested.py);
    - GraphBuilder's default id prefix: set before every node call;
    - the preview method (0.33+): execute_async writes it from extra_data;
    - the RAM-release hook (0.33+): execute_async sets it and clears it in a finally block.

    Built once per process (the accessors read the state when called), so saving it costs no imports per iteration.
    """
    import comfy.cli_args
    import comfy.utils
    import comfy_execution.progress as progress
    from comfy_execution.graph_utils import GraphBuilder

    accessors: list[tuple[str, Callable[[], Any], Callable[[Any], None]]] = [
        ("progress registry", lambda: progress.global_progress_registry,
         lambda value: setattr(progress, "global_progress_registry", value)),
        ("progress bar hook", lambda: comfy.utils.PROGRESS_BAR_HOOK, comfy.utils.set_progress_bar_global_hook),
        ("graph builder prefix",
         lambda: (GraphBuilder._default_prefix_root, GraphBuilder._default_prefix_call_index,
                  GraphBuilder._default_prefix_graph_index),
         lambda value: GraphBuilder.set_default_prefix(*value)),
        ("preview method", lambda: getattr(comfy.cli_args.args, "preview_method", None),
         lambda value: setattr(comfy.cli_args.args, "preview_method", value)),
    ]  # fmt: skip
    try:
        import comfy.memory_management as memory
    except ImportError:
        memory = None
    if memory is not None and hasattr(memory, "set_ram_cache_release_state"):
        accessors.append(
            ("ram release hook",
             lambda: (getattr(memory, "extra_ram_release_callback", None), getattr(memory, "RAM_CACHE_HEADROOM", 0)),
             lambda value: memory.set_ram_cache_release_state(*value))
        )  # fmt: skip
    return tuple(accessors)
