"""What differs between ComfyUI versions, found by looking rather than by version strings.

Covers 0.3.75 through the newest releases (comfyui-internals.md):
- `cache_args` keys: 0.3.75 reads "ram", 0.33+ also "ram_inactive"; `cache_args()` gives all of them.
- the interrupt exception derives from Exception on 0.3.75 and from BaseException since April 2026: it is
  taken from `comfy.model_management` and matched with isinstance, never by a blanket `except Exception`.
- a nested run (executor/nested.py): the executor subclass that keeps a failed node's exception, the event loop
  set aside while a body runs, the process-global state a nested executor writes (saved only where it exists),
  the RAM-release hook kept for the run around it, and what an inner run's extra_data carries on from the outer
  one (preview method, usage source).
- node replacements (0.33+ `app/node_replace_manager.py`), applied before a body is parked.
- output caches whose accessors became coroutines (0.33+), and `asset_manager` (0.38+): not needed, because
  values leave a body through carry-out sinks, never by reading an executor's cache, and the executor's
  default asset manager serves.
- the native `"*"` wildcard (newer versions): `ports.anytype.AnyType` is a wildcard on every version.
- the websocket protocol the frontend reads (0.3.75 through 0.38 and frontends 1.32.9 through the newest): binary
  event numbers (`protocol.BinaryEventTypes`) and the layout of a progress-text frame, the `progress_state` node
  map `WebUIProgressHandler` builds, and
  how the frontend counts a prompt's total progress (`execution_cached` and `executed` mark nodes done).
- how ComfyUI reports a failed node (`PromptExecutor.add_message`): the message dict it appends to its status
  messages is the one it sends, so amending it on the way out amends the history too.
- the embedded boot (executor/embedded.py), which follows main.py's `start_comfyui`: the server's constructor
  (0.38 adds an asset manager), the files naming extra paths (0.38 adds extra_paths.yaml), the cache main.py
  gives its executor (RAM_PRESSURE by default since 0.33), dynamic VRAM (0.33+), custom-node governance (0.38)
  and what main.py re-applies after custom nodes load.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import importlib.util
import inspect
import logging
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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
    - the preview method (0.33+): execute_async writes it from extra_data (`preview_method`, below, hands the
      outer run's on, so it differs only between runs).

    Not GraphBuilder's default id prefix: every version sets it before each node call (`pre_execute_cb` in
    execution.py), so the node after a loop gets its own, and Discomfort builds its expansions without it. Not
    the RAM-release hook: an inner run never changes it (`outer_ram_release_kept`).

    Built once per process (the accessors read the state when called), so saving it costs no imports per iteration.
    """
    import comfy.cli_args
    import comfy.utils
    import comfy_execution.progress as progress

    return (
        ("progress registry", lambda: progress.global_progress_registry,
         lambda value: setattr(progress, "global_progress_registry", value)),
        ("progress bar hook", lambda: comfy.utils.PROGRESS_BAR_HOOK, comfy.utils.set_progress_bar_global_hook),
        ("preview method", lambda: getattr(comfy.cli_args.args, "preview_method", None),
         lambda value: setattr(comfy.cli_args.args, "preview_method", value)),
    )  # fmt: skip


@contextlib.contextmanager
def outer_ram_release_kept() -> Iterator[None]:
    """While a body runs, the RAM-release hook stays the outer run's (0.33+ `comfy.memory_management`).

    An executor sets the hook when it starts (its cache's `ram_release` under RAM_PRESSURE, the default since
    0.33; None under CLASSIC, as a private executor's is) and clears it in a `finally`. Were an inner run to do so,
    a model loading inside a body could not free the outer cache's RAM, the very moment it is needed. An inner
    cache has nothing to release, so its executor's calls are passed over; the hook itself is never touched.
    """
    try:
        import comfy.memory_management as memory
    except ImportError:
        memory = None
    setter = getattr(memory, "set_ram_cache_release_state", None)
    if setter is None:  # 0.3.75: the cache frees RAM itself after each node, with no process-wide hook
        yield
        return
    memory.set_ram_cache_release_state = lambda callback, headroom: None
    try:
        yield
    finally:
        memory.set_ram_cache_release_state = setter


def inner_extra_data() -> dict[str, Any]:
    """What the outer run's extra_data chose that an inner run must see too, beyond what a node receives as hidden
    inputs: the preview method (0.33+ reads `extra_data["preview_method"]` when a run starts, and without it falls
    back to the command line's, so a body's samplers would preview differently from the rest of the prompt). It
    is read from `args`, where the outer run put it."""
    from comfy.cli_args import args

    method = getattr(args, "preview_method", None)
    value = getattr(method, "value", None)
    return {"preview_method": value} if isinstance(value, str) else {}


HIDDEN_INPUTS = {
    # What a loop node takes from the outer run to hand its inner runs (as extra_data of the same names). Hidden
    # types a version does not know are not passed: COMFY_USAGE_SOURCE came with 0.33 (the server takes it from
    # the request's Comfy-Usage-Source header; API nodes report it).
    "extra_pnginfo": "EXTRA_PNGINFO",
    "auth_token_comfy_org": "AUTH_TOKEN_COMFY_ORG",
    "api_key_comfy_org": "API_KEY_COMFY_ORG",
    "comfy_usage_source": "COMFY_USAGE_SOURCE",
}


def take_hidden(inputs: dict[str, Any]) -> dict[str, Any]:
    """The `HIDDEN_INPUTS` a node was called with, taken out of `inputs` (its other keyword arguments)."""
    return {name: inputs.pop(name, None) for name in HIDDEN_INPUTS}


def apply_node_replacements(prompt: dict[str, Any], server: Any) -> dict[str, Any]:
    """`prompt` with the node replacements packs registered applied (0.33+ `server.node_replace_manager`), or
    `prompt` itself where there are none.

    The server applies them to a queued prompt after the on-prompt hooks, so never to a body parked in a loop node
    by then: they are applied first, to a copy (the manager rewrites what it is given in place)."""
    manager = getattr(server, "node_replace_manager", None)
    if manager is None or not hasattr(manager, "apply_replacements"):
        return prompt
    replaced = copy.deepcopy(prompt)
    manager.apply_replacements(replaced)
    return replaced


@functools.cache
def capturing_executor_class() -> type:
    """ComfyUI's PromptExecutor, keeping the exception object of a failed node (`failure`): its status messages hold
    only the text, and the loop re-raises an interrupt as the interrupt it was. `handle_execution_error(prompt_id,
    prompt, current_outputs, executed, error, ex)` has had this signature in every version from 0.3.75 to 0.38."""
    import execution

    class CapturingExecutor(execution.PromptExecutor):
        failure: tuple[dict, BaseException] | None = None

        def handle_execution_error(self, prompt_id, prompt, current_outputs, executed, error, ex):
            self.failure = (error, ex)
            super().handle_execution_error(prompt_id, prompt, current_outputs, executed, error, ex)

    return CapturingExecutor


@contextlib.contextmanager
def outer_loop_set_aside() -> Iterator[None]:
    """No event loop is running on this thread until the block ends, then the one that was is again.

    A node runs inside the prompt worker's loop, and asyncio allows one running loop per thread; a body runs to
    completion on a loop of its own meanwhile. `asyncio._get_running_loop` and `_set_running_loop` are the hooks
    asyncio keeps for loop implementations (unchanged from Python 3.7 to 3.14)."""
    outer = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(outer)


def loop_survives(error: BaseException) -> bool:
    """Whether an event loop whose `run_until_complete` raised `error` can run the next coroutine. asyncio lets
    KeyboardInterrupt and SystemExit out of a task mid-step, leaving it orphaned on the loop; any other exception,
    ComfyUI's interrupt included (a BaseException since April 2026), ends its task first."""
    return not isinstance(error, (KeyboardInterrupt, SystemExit))


@functools.cache
def binary_event(name: str) -> int:
    """A binary websocket event number (PREVIEW_IMAGE_WITH_METADATA, TEXT); `protocol.BinaryEventTypes` has held
    the same numbers since 2023: 1 preview, 2 unencoded preview, 3 text, 4 preview with metadata."""
    try:
        from protocol import BinaryEventTypes
    except ImportError:  # before protocol.py existed the numbers lived on server.BinaryEventTypes
        from server import BinaryEventTypes
    return int(getattr(BinaryEventTypes, name))


def readdress_progress_text(message: bytes, shown: Callable[[str], str]) -> bytes:
    """A progress-text frame (`PromptServer.send_progress_text`, every version: the node id's length as a 4-byte
    big-endian unsigned int, the id, then the text) with its node id replaced by `shown(id)`."""
    (length,) = struct.unpack(">I", message[:4])
    node_id = shown(message[4 : 4 + length].decode()).encode()
    return struct.pack(">I", len(node_id)) + node_id + message[4 + length :]


def progress_registry() -> Any:
    """The progress registry of the prompt running now (a nested run replaces it while it runs)."""
    import comfy_execution.progress as progress

    return progress.global_progress_registry


def progress_nodes(registry: Any, prompt_id: str | None) -> dict[str, dict[str, Any]]:
    """The node map of a `progress_state` message for `registry`, as `WebUIProgressHandler` builds it (pending nodes
    left out): the frontend replaces its whole map with each message, so a nested run's states are sent merged with
    the run around it."""
    if registry is None:
        return {}
    from comfy_execution.progress import NodeState

    dynprompt = registry.dynprompt
    return {
        node_id: {"value": state["value"], "max": state["max"], "state": state["state"].value, "node_id": node_id,
                  "prompt_id": prompt_id, "display_node_id": dynprompt.get_display_node_id(node_id),
                  "parent_node_id": dynprompt.get_parent_node_id(node_id),
                  "real_node_id": dynprompt.get_real_node_id(node_id)}
        for node_id, state in registry.nodes.items()
        if state["state"] != NodeState.Pending
    }  # fmt: skip


# ComfyUI's own loops (0.36+, comfy_extras/nodes_loop.py; schema `loop_boundary` "start" and "end"): expanded when
# the Start runs, every iteration at once, from the nodes between the two (found by validate_loops, which writes
# `_loop_body` and `_loop_end` on the Start). A Discomfort body never takes them, nor what feeds a Start: they stay
# in the run around it, and what they give the body enters it from outside (plan.prepare_prompt).
NATIVE_LOOP_START = "StartLoop"
NATIVE_LOOP_CLASSES = frozenset({NATIVE_LOOP_START, "EndLoop"})


def original_node_id(dynprompt: Any, node_id: str, prompt: Any) -> str:
    """The node of the queued prompt that `node_id` was made from. ComfyUI's loops (0.36+) run each iteration's
    copy of a body node under a new id (`<start>.0.0.<i>_<id>`), its display id the original's; a copy keeps the
    class and inputs of what it copies, nothing else (not the body Discomfort parked in a loop node)."""
    seen = set()
    while dynprompt is not None and node_id not in prompt and node_id not in seen:
        seen.add(node_id)
        node_id = dynprompt.get_display_node_id(node_id)
    return node_id


def escapes_native_loop(node_errors: Any) -> bool:
    """Whether validation refused a native loop whose body reaches an output node other than its End (0.36+
    validate_loops: error type "loop_escape" in the node errors' extra_info)."""
    return any(
        (error.get("extra_info") or {}).get("loop_error_type") == "loop_escape"
        for report in (node_errors or {}).values()
        for error in report.get("errors", [])
    )


# --- the embedded boot: what main.py does before and after custom nodes load ----------------------------------------


def prepare_args(args: Any) -> None:
    """Set ComfyUI's `args` for a process that never parses a command line (its defaults otherwise stand).

    Only `cpu` is set, when torch sees no CUDA device: on a CUDA build of torch without a GPU (as here), importing
    comfy.model_management fails otherwise (every version). Where API nodes load is chosen by the argument to
    `init_extra_nodes`, as main.py does, not by `args.disable_api_nodes`: since 0.38 that flag is a deprecated alias
    resolved while parsing the command line, so setting it later does nothing.
    """
    import torch

    if not torch.cuda.is_available():
        args.cpu = True


def extra_path_configs(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The path files in ComfyUI's root main.py loads, as (file, keyword arguments to load_extra_path_config).

    0.3.75 and 0.33 read `extra_model_paths.yaml`; 0.38 reads `extra_paths.yaml` first (system folders allowed)
    and then ignores the older file. The keyword is passed only where `load_extra_path_config` takes it.
    """
    import utils.extra_config

    newer, older = root / "extra_paths.yaml", root / "extra_model_paths.yaml"
    takes = inspect.signature(utils.extra_config.load_extra_path_config).parameters
    if newer.is_file() and "allow_system_dirs" in takes:
        return [(newer, {"allow_system_dirs": True})]
    return [(older, {})] if older.is_file() else []


def initialize_governance() -> None:
    """0.38's custom-node policy (`app/governance.py`): main.py initializes it before any pack's code runs, and a
    pack the user's organisation refuses must stay refused headless too. Absent before 0.38."""
    if importlib.util.find_spec("app.governance") is None:
        return
    from app import governance

    governance.initialize()


def start_dynamic_vram(args: Any) -> bool:
    """Dynamic VRAM (0.33+, comfy-aimdo), first half: main.py starts comfy-aimdo before torch's models are set up.

    Only where ComfyUI's own rule (`comfy.cli_args.enables_dynamic_vram`) enables it: never with `args.cpu`, so
    never on a machine without a GPU. Older comfy-aimdo releases take fewer keywords; they are tried in turn.
    """
    import comfy.cli_args

    enables = getattr(comfy.cli_args, "enables_dynamic_vram", None)
    if enables is None or not enables():
        return False
    import comfy_aimdo.control

    headroom = None if getattr(args, "reserve_vram", None) is None else int(args.reserve_vram * 1024**3)
    pressure = not getattr(args, "disable_nvml_pressure", False)
    for keywords in ({"simple_vram_headroom": headroom, "nvml_pressure": pressure},
                     {"simple_vram_headroom": headroom}, {}):  # fmt: skip
        try:
            comfy_aimdo.control.init(**keywords)
            return True
        except TypeError:
            continue
    return False


def enable_dynamic_vram(args: Any, started: bool) -> None:
    """Dynamic VRAM, second half, once comfy.model_management knows the devices: as main.py, on NVIDIA and on AMD
    with ROCm 7.14+, with torch 2.8+, models are patched by ComfyUI's dynamic patcher."""
    if not started:
        return
    import comfy.memory_management
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy_aimdo.control

    supported = mm.is_nvidia() or (mm.is_amd() and getattr(mm, "rocm_version", (0, 0)) >= (7, 14))
    if not supported or mm.torch_version_numeric < (2, 8):
        log.warning("dynamic VRAM needs an NVIDIA GPU (or ROCm 7.14+) and torch 2.8+; ComfyUI's older patcher runs")
        return
    devices = mm.get_all_torch_devices()
    headroom = int(getattr(args, "vram_headroom", 0) * 1024**3)
    try:
        ready = comfy_aimdo.control.init_devices((device.index, headroom) for device in devices)
    except TypeError:  # comfy-aimdo 0.4.9 takes device indices alone
        ready = comfy_aimdo.control.init_devices(device.index for device in devices)
    if ready:
        comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
        comfy.memory_management.aimdo_enabled = True
        log.info("ComfyUI's dynamic VRAM enabled")


def prompt_server(server_class: type, loop: Any) -> Any:
    """An instance of ComfyUI's PromptServer (or a subclass), constructed as main.py does and never started.

    - 0.38 takes an asset manager: the disabled one (`NoAssets`), so a headless run starts no asset database or
      file scans (the executor's own default is the same).
    - every version serves its frontend package from the server's constructor, and exits the process when that
      package is missing (`FrontendManager.default_frontend_path`); a headless process serves no pages, so then
      an empty folder stands in for it.
    """
    from comfy.cli_args import args

    if args.front_end_root is None and importlib.util.find_spec("comfyui_frontend_package") is None:
        import folder_paths

        args.front_end_root = os.path.join(folder_paths.get_temp_directory(), "no-frontend")
        os.makedirs(args.front_end_root, exist_ok=True)
    extra = []
    if "asset_manager" in inspect.signature(server_class.__init__).parameters:
        from app.assets.manager import NoAssets

        extra.append(NoAssets(args))
    return server_class(loop, *extra)


def outer_cache() -> tuple[Any, dict[str, float]]:
    """The cache main.py gives the server's executor, for the one an embedded ComfyUI runs prompts on.

    Since mid-2026 (0.33 has it; `--cache-classic` appeared with it) RAM_PRESSURE is the default, with an active
    headroom of 10% of RAM (2 to 10 GB) and an inactive one of all RAM (at most 128 GB); before (0.3.75), CLASSIC.
    Command-line choices do not exist here, so ComfyUI's defaults stand.
    """
    import comfy.model_management
    import execution
    from comfy.cli_args import args

    if not hasattr(args, "cache_classic"):
        return execution.CacheType.CLASSIC, cache_args()
    total_gb = comfy.model_management.total_ram / 1024.0
    ram = {"ram": min(10.0, max(2.0, total_gb * 0.10)), "ram_inactive": min(128.0, total_gb)}
    return execution.CacheType.RAM_PRESSURE, {**cache_args(), **ram}


def after_custom_nodes() -> None:
    """What main.py re-applies once custom nodes are imported: cuDNN's benchmark policy (0.33+), which some packs
    set at import."""
    import comfy.model_management

    if hasattr(comfy.model_management, "set_cudnn_benchmark"):
        comfy.model_management.set_cudnn_benchmark()
