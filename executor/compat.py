"""What differs between ComfyUI versions, found by looking rather than by version strings.

Covers 0.3.75 through the newest releases (comfyui-internals.md): cache accessors that became coroutines, cache_args
keys, the interrupt exception's base class, and process-global state that newer executors touch.
"""

from __future__ import annotations

import inspect
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


def raise_if_interrupted() -> None:
    """Consume a pending interrupt and raise it. Each inner run clears the flag, so check before starting one."""
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()


async def cached_output(cache: Any, node_id: str) -> Any:
    """A node's entry in an output cache: `get` is sync on 0.3.75 and a coroutine on 0.33+."""
    getter = getattr(cache, "get_local", None) or cache.get
    value = getter(node_id)
    return await value if inspect.isawaitable(value) else value


def is_output_node(class_type: str) -> bool:
    """True when ComfyUI runs nodes of this class as outputs (V1 OUTPUT_NODE; V3 classes expose it too)."""
    import nodes

    node_class = nodes.NODE_CLASS_MAPPINGS.get(class_type)
    return bool(getattr(node_class, "OUTPUT_NODE", False)) if node_class is not None else False


def executing_context() -> Any:
    """The (prompt_id, node_id, list_index) of the node running in this thread, or None."""
    from comfy_execution.utils import get_executing_context

    return get_executing_context()


def global_state_accessors() -> list[tuple[str, Callable[[], Any], Callable[[Any], None]]]:
    """Process-global state an inner run overwrites, as (name, get, set) triples; only what this version has.

    - the progress registry: execute_async replaces it, and the outer run's later progress would go to it;
    - the progress-bar hook: replaced during inner runs to re-address progress (see nested.py);
    - GraphBuilder's default id prefix: set before every node call;
    - the preview method (0.33+): execute_async writes it from extra_data;
    - the RAM-release hook (0.33+): execute_async sets it and clears it in a finally block.
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
    return accessors
