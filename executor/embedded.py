"""ComfyUI booted inside this process, running prompts without a server.

This is what the CLI, the Python API and the in-process tests stand on. ComfyUI keeps its state in modules
(`nodes.NODE_CLASS_MAPPINGS`, `folder_paths`, `comfy.model_management`), so there is one embedded ComfyUI per
process: `boot()` returns the same object on every call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ComfyNotFoundError, ExecutionError, PromptValidationError
from . import compat, outcome
from .outcome import amend

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
HEADLESS_CLIENT = "discomfort-headless"
T = TypeVar("T")


def headless_server(server_module: Any, loop: asyncio.AbstractEventLoop) -> Any:
    """ComfyUI's own PromptServer for a process without a server: built as main.py builds it, never started.

    It is `PromptServer.instance`, so node packs that register routes or on-prompt handlers at import, or reach
    for the node-replacement manager, find what they do on a server. Only delivery differs: what the real one
    queues for its websocket goes to `listeners` (callables taking event and data), synchronously; nothing listens
    on a socket.
    """

    class HeadlessPromptServer(server_module.PromptServer):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.listeners: list[Callable[[Any, Any], None]] = []
            self.last_prompt_id: str | None = None  # main.py's prompt worker keeps it; the progress hook reads it

        def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
            if not amend(event, data):
                return
            for listener in list(self.listeners):
                listener(event, data)

        # Amended here already: outcome.install, which Discomfort's server hook calls on the server, leaves it be.
        send_sync.discomfort_amends = True  # type: ignore[attr-defined]

    return compat.prompt_server(HeadlessPromptServer, loop)


@dataclass
class RunResult:
    """What a finished prompt left behind: UI outputs by node id (as in /history) and the messages it sent."""

    prompt_id: str
    outputs: dict[str, dict[str, Any]]
    messages: list[tuple[str, Any]] = field(default_factory=list)

    def images(self) -> list[dict[str, str]]:
        """Every image a SaveImage-like node reported, as ``{"filename", "subfolder", "type"}`` dicts."""
        return [image for output in self.outputs.values() for image in output.get("images", [])]


@dataclass
class EmbeddedComfy:
    root: Path
    server: Any  # headless_server()'s, also PromptServer.instance
    _prompt_executor: Any = None
    # Prompts and loops run one at a time (ComfyUI's executor and globals are not reentrant) on a thread of their
    # own, as on ComfyUI's server (its prompt_worker). Not only for fidelity: glibc's main-thread heap returns
    # freed memory to the OS and faults it back in, which made a blur on a 512x512 image take 1.5x as long on the
    # main thread as on any other.
    _worker: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="discomfort-prompt")
    )

    def _executor(self) -> Any:
        # One executor for every prompt, as ComfyUI's server keeps one: cached outputs and node instances (a
        # loop's private executor among them) carry over from one prompt to the next.
        import execution

        if self._prompt_executor is None:
            cache_type, cache_args = compat.outer_cache()
            self._prompt_executor = execution.PromptExecutor(self.server, cache_type=cache_type, cache_args=cache_args)
        return self._prompt_executor

    @property
    def output_directory(self) -> Path:
        import folder_paths

        return Path(folder_paths.get_output_directory())

    def set_output_directory(self, path: str | os.PathLike) -> None:
        import folder_paths

        Path(path).mkdir(parents=True, exist_ok=True)
        folder_paths.set_output_directory(str(Path(path).resolve()))

    def node_class(self, class_type: str) -> type:
        import nodes

        return nodes.NODE_CLASS_MAPPINGS[class_type]

    def run(
        self, prompt: Mapping[str, Any], *, prompt_id: str | None = None, extra_data: dict | None = None
    ) -> RunResult:
        """Validate and run an API prompt to the end; raise `PromptValidationError` or `ExecutionError` on failure."""
        import execution

        from .plan import prepare_prompt

        prompt_id = prompt_id or str(uuid.uuid4())
        prompt = prepare_prompt(compat.apply_node_replacements(dict(prompt), self.server))
        prompt, extra_data = self._on_prompt(prompt, dict(extra_data or {}))
        prompt = {node_id: dict(node) for node_id, node in prompt.items()}
        messages: list[tuple[str, Any]] = []

        def record(event: str, data: Any) -> None:
            messages.append((event, data))

        def validate_and_execute() -> Any:
            self.server.listeners.append(record)
            try:
                valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
                if not valid:
                    raise PromptValidationError(describe_validation_error(prompt, error, node_errors), node_errors)
                executor = self._executor()
                self.server.last_prompt_id = prompt_id
                # A client id, as the frontend sends one: ComfyUI sends most messages only to a client.
                executor.execute(prompt, prompt_id, {"client_id": HEADLESS_CLIENT, **extra_data}, outputs)
                return executor
            finally:
                self.server.listeners.remove(record)

        executor = self.call(validate_and_execute)
        if not executor.success:
            raise execution_error_from(executor.status_messages)
        return RunResult(prompt_id, dict(executor.history_result.get("outputs", {})), messages)

    def _on_prompt(self, prompt: dict[str, Any], extra_data: dict[str, Any]) -> tuple[dict[str, Any], dict]:
        """What ComfyUI's server does to a queued prompt before validating it: every on-prompt handler a pack
        registered, in order, a failing one logged and passed over. Discomfort's own (which prepares loops) has
        run already, called directly so that its errors reach the caller."""
        data: dict[str, Any] = {"prompt": prompt, "extra_data": extra_data}
        for handler in list(self.server.on_prompt_handlers):
            if getattr(handler, "discomfort_hook", False):
                continue
            try:
                data = handler(data)
            except Exception:
                log.warning("an on-prompt handler (%s) failed; passed over, as ComfyUI's server does", handler,
                            exc_info=True)  # fmt: skip
        return data["prompt"], data.get("extra_data") or {}

    def call(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` on the prompt thread, after whatever runs there; its result or exception.

        On Ctrl-C ComfyUI is asked to interrupt, and the prompt or loop is let stop (a loop keeps its finished
        iterations) before KeyboardInterrupt is raised here; a second Ctrl-C stops the waiting.
        """
        future = self._worker.submit(function, *args, **kwargs)
        try:
            return future.result()
        except KeyboardInterrupt:
            import nodes

            # Asked again until the work ends: every inner run of a loop clears ComfyUI's flag as it starts, so a
            # single request landing between the loop's check and that clearing would be lost, and the loop run on.
            while not future.done():
                nodes.interrupt_processing(True)
                concurrent.futures.wait([future], timeout=0.1)
            nodes.interrupt_processing(False)  # it may have ended before looking; the next run must not see it
            raise


def describe_validation_error(prompt: Mapping[str, Any], error: Mapping[str, Any] | None, node_errors: Mapping) -> str:
    parts = [str((error or {}).get("message") or "the prompt is not valid")]
    for node_id, report in (node_errors or {}).items():
        class_type = report.get("class_type") or (prompt.get(node_id) or {}).get("class_type", "?")
        for problem in report.get("errors", []):
            detail = f": {problem['details']}" if problem.get("details") else ""
            parts.append(f"node {node_id} ({class_type}): {problem.get('message', 'invalid')}{detail}")
    return "; ".join(parts)


def execution_error_from(status_messages: Iterable[tuple[str, Mapping[str, Any]]]) -> ExecutionError:
    for event, data in status_messages:
        if event == "execution_error":
            # ComfyUI names the type with its module, which for a custom node is a file path.
            type_name = str(data.get("exception_type", "")).rpartition(".")[2]
            return ExecutionError(
                f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                f"{type_name}: {data.get('exception_message', '').strip()}",
                node_id=data.get("node_id"),
                class_type=data.get("node_type"),
                exception_type=data.get("exception_type"),
                traceback=data.get("traceback"),
            )
        if event == "execution_interrupted":
            return ExecutionError(
                f"interrupted at node {data.get('node_id')} ({data.get('node_type')})",
                node_id=data.get("node_id"),
                class_type=data.get("node_type"),
                exception_type="InterruptProcessingException",
            )
    return ExecutionError("the prompt failed without reporting an error")


_embedded: EmbeddedComfy | None = None
_boot_lock = threading.Lock()


def find_comfyui(path: str | os.PathLike | None = None) -> Path:
    """The ComfyUI to boot: `path`, else $COMFYUI_PATH (which `tools/dev.py` sets to the provisioned runtime)."""
    candidate = path or os.environ.get("COMFYUI_PATH")
    if not candidate:
        raise ComfyNotFoundError(
            "no ComfyUI to run on: set COMFYUI_PATH to a ComfyUI folder, or run through `python3 tools/dev.py`, "
            "which provisions one"
        )
    root = Path(candidate).expanduser().resolve()
    if not (root / "execution.py").is_file() or not (root / "nodes.py").is_file():
        raise ComfyNotFoundError(f"{root} is not a ComfyUI folder (no execution.py and nodes.py there)")
    return root


def boot(
    comfyui_path: str | os.PathLike | None = None,
    *,
    custom_node_dirs: Iterable[str | os.PathLike] | None = None,
    extra_custom_node_dirs: Iterable[str | os.PathLike] = (),
    register_discomfort: bool = True,
    api_nodes: bool = False,
    output_directory: str | os.PathLike | None = None,
    input_directory: str | os.PathLike | None = None,
    temp_directory: str | os.PathLike | None = None,
    user_directory: str | os.PathLike | None = None,
) -> EmbeddedComfy:
    """Boot ComfyUI in this process (once), load its nodes, and return the handle to run prompts on.

    Args:
        comfyui_path: the ComfyUI folder; defaults to $COMFYUI_PATH.
        custom_node_dirs: the custom_nodes folders to load through ComfyUI's own loader, instead of ComfyUI's
            (its `custom_nodes` folder and those its extra_model_paths.yaml names).
        extra_custom_node_dirs: custom_nodes folders to load besides those.
        register_discomfort: register this package's nodes directly, so that the nodes and the code calling
            `boot()` share one copy of Discomfort's modules. Leave it off when a custom_nodes folder already
            holds Discomfort.
        api_nodes: load ComfyUI's API (partner) nodes too, as its server does unless told not to. Off by default:
            they call paid services and slow the boot.
        output_directory, input_directory, temp_directory, user_directory: ComfyUI's folders; ComfyUI's
            defaults under its root when None.
    """
    global _embedded
    with _boot_lock:
        if _embedded is not None:
            if comfyui_path is not None and find_comfyui(comfyui_path) != _embedded.root:
                raise ComfyNotFoundError(f"ComfyUI at {_embedded.root} is already booted in this process")
            return _embedded
        root = find_comfyui(comfyui_path)
        folders = {"output": output_directory, "input": input_directory, "temp": temp_directory,
                   "user": user_directory}  # fmt: skip
        _embedded = _boot(root, custom_node_dirs, tuple(extra_custom_node_dirs), register_discomfort, api_nodes,
                          folders)  # fmt: skip
        return _embedded


def _boot(root, custom_node_dirs, extra_custom_node_dirs, register_discomfort, api_nodes, folders) -> EmbeddedComfy:
    """The steps of ComfyUI's main.py (`start_comfyui` and what precedes it) that a process without a listening
    server needs, in main.py's order."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from comfy.cli_args import args

    compat.prepare_args(args)  # before comfy.model_management is imported
    import folder_paths

    # `utils.extra_config` must be imported before `nodes`, which puts ROOT/comfy (with its own `utils`) first on
    # sys.path.
    import utils.extra_config

    _set_paths(root, folder_paths, utils.extra_config, custom_node_dirs, extra_custom_node_dirs, folders)
    compat.initialize_governance()
    _run_prestartup_scripts(folder_paths)
    dynamic_vram = compat.start_dynamic_vram(args)

    # isort: split
    import execution  # noqa: F401
    import hook_breaker_ac10a0
    import server

    import nodes

    compat.enable_dynamic_vram(args, dynamic_vram)
    if getattr(server.PromptServer, "instance", None) is not None:
        raise ComfyNotFoundError("a ComfyUI server already runs in this process: run loops there through its nodes")
    # A loop of its own, as main.py makes, for the server and the node loaders; never run once they have loaded.
    loop = asyncio.new_event_loop()
    headless = headless_server(server, loop)  # PromptServer.instance from here on, before any pack is imported
    outcome.install(headless)  # progress text a body's nodes send it goes through the body's proxy
    hook_breaker_ac10a0.save_functions()
    try:
        loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=api_nodes))
        compat.after_custom_nodes()
    finally:
        hook_breaker_ac10a0.restore_functions()
    if register_discomfort:
        _register_self(nodes)
    with warnings.catch_warnings():
        # A few of ComfyUI's own handlers are plain functions, which aiohttp deprecates: nothing to act on here.
        warnings.simplefilter("ignore", DeprecationWarning)
        headless.add_routes()
    _report_progress(headless)
    log.info("ComfyUI at %s booted in-process with %d node classes", root, len(nodes.NODE_CLASS_MAPPINGS))
    return EmbeddedComfy(root, headless)


def _set_paths(root, folder_paths, extra_config, custom_node_dirs, extra_custom_node_dirs, folders) -> None:
    """ComfyUI's folders as main.py's `apply_custom_paths` sets them: the root's path file first, then the folders
    asked for, then the model folders under the output folder that ComfyUI's save nodes write to."""
    for config, keywords in compat.extra_path_configs(root):
        extra_config.load_extra_path_config(str(config), **keywords)
    setters = {"output": folder_paths.set_output_directory, "input": folder_paths.set_input_directory,
               "temp": folder_paths.set_temp_directory, "user": folder_paths.set_user_directory}  # fmt: skip
    for name, path in folders.items():
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            setters[name](str(Path(path).resolve()))
    for kind in ("checkpoints", "clip", "vae", "diffusion_models", "loras"):
        folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.get_output_directory(), kind))
    if custom_node_dirs is not None:
        folder_paths.folder_names_and_paths["custom_nodes"] = ([str(Path(d).resolve()) for d in custom_node_dirs],
                                                               set())  # fmt: skip
    for folder in extra_custom_node_dirs:
        folder_paths.add_model_folder_path("custom_nodes", str(Path(folder).resolve()))


def _run_prestartup_scripts(folder_paths: Any) -> None:
    """Each custom node pack's `prestartup_script.py`, before ComfyUI's nodes are imported, as main.py runs them; a
    failing one is logged, and its pack still loads (or fails) on its own."""
    import importlib.util

    for folder in folder_paths.get_folder_paths("custom_nodes"):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            script = os.path.join(folder, name, "prestartup_script.py")
            if name.endswith(".disabled") or not os.path.isfile(script):
                continue
            try:
                spec = importlib.util.spec_from_file_location(os.path.splitext(script)[0], script)
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            except Exception:
                log.exception("the start-up script of %s failed", os.path.join(folder, name))


def _report_progress(headless: Any) -> None:
    """Progress bars' reports, as main.py's `hijack_progress` sends them, to the headless server's listeners; like
    it, the hook stops a node between two steps when an interrupt is pending (Ctrl-C)."""
    import comfy.model_management
    import comfy.utils
    from comfy_execution.progress import get_progress_state

    def hook(value, total, preview_image, prompt_id=None, node_id=None):
        context = compat.executing_context()
        prompt_id = prompt_id or getattr(context, "prompt_id", None) or headless.last_prompt_id
        node_id = node_id or getattr(context, "node_id", None) or headless.last_node_id
        comfy.model_management.throw_exception_if_processing_interrupted()
        get_progress_state().update_progress(node_id, value, total, preview_image)
        headless.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id},
                           headless.client_id)  # fmt: skip

    comfy.utils.set_progress_bar_global_hook(hook)


def _register_self(nodes_module: Any) -> None:
    from .. import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    for name, node_class in NODE_CLASS_MAPPINGS.items():
        nodes_module.NODE_CLASS_MAPPINGS[name] = node_class
        node_class.RELATIVE_PYTHON_MODULE = f"custom_nodes.{PACKAGE_ROOT.name}"
    nodes_module.NODE_DISPLAY_NAME_MAPPINGS.update(NODE_DISPLAY_NAME_MAPPINGS)
