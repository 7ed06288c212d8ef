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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ComfyNotFoundError, ExecutionError, PromptValidationError
from . import compat
from .outcome import amend

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
HEADLESS_CLIENT = "discomfort-headless"
T = TypeVar("T")


class HeadlessServer:
    """Stands in for ComfyUI's PromptServer when there is no server: the executor only needs these members.

    Messages are logged at debug level and handed to `listeners` (callables taking event and data).
    """

    def __init__(self) -> None:
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.sockets_metadata: dict = {}
        self.listeners: list = []

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        if not amend(event, data):
            return
        for listener in list(self.listeners):
            listener(event, data)

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        self.send_sync("progress_text", {"text": text, "node_id": node_id})

    def queue_updated(self) -> None:
        pass


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
    server: HeadlessServer
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
            self._prompt_executor = execution.PromptExecutor(
                self.server, cache_type=execution.CacheType.CLASSIC, cache_args=compat.cache_args()
            )
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
        # What ComfyUI's server does to every queued prompt through Discomfort's on-prompt hook.
        prompt = {node_id: dict(node) for node_id, node in prepare_prompt(prompt).items()}
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
                executor.execute(prompt, prompt_id, {"client_id": HEADLESS_CLIENT, **(extra_data or {})}, outputs)
                return executor
            finally:
                self.server.listeners.remove(record)

        executor = self.call(validate_and_execute)
        if not executor.success:
            raise execution_error_from(executor.status_messages)
        return RunResult(prompt_id, dict(executor.history_result.get("outputs", {})), messages)

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

            nodes.interrupt_processing(True)
            concurrent.futures.wait([future])
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
    register_discomfort: bool = True,
    output_directory: str | os.PathLike | None = None,
    input_directory: str | os.PathLike | None = None,
    temp_directory: str | os.PathLike | None = None,
    user_directory: str | os.PathLike | None = None,
) -> EmbeddedComfy:
    """Boot ComfyUI in this process (once), load its nodes, and return the handle to run prompts on.

    Args:
        comfyui_path: the ComfyUI folder; defaults to $COMFYUI_PATH.
        custom_node_dirs: custom_nodes folders to load through ComfyUI's own loader; ComfyUI's own
            `custom_nodes` folder when None.
        register_discomfort: register this package's nodes directly, so that the nodes and the code calling
            `boot()` share one copy of Discomfort's modules. Leave it off when a custom_nodes folder already
            holds Discomfort.
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
        _embedded = _boot(
            root,
            custom_node_dirs,
            register_discomfort,
            output_directory,
            input_directory,
            temp_directory,
            user_directory,
        )
        return _embedded


def _boot(
    root, custom_node_dirs, register_discomfort, output_directory, input_directory, temp_directory, user_directory
):
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import torch
    from comfy.cli_args import args

    # Before comfy.model_management is imported: a CUDA build of torch on a machine without a GPU fails otherwise.
    if not torch.cuda.is_available():
        args.cpu = True
    args.disable_api_nodes = True
    import folder_paths

    for setter, path in (
        (folder_paths.set_output_directory, output_directory),
        (folder_paths.set_input_directory, input_directory),
        (folder_paths.set_temp_directory, temp_directory),
        (folder_paths.set_user_directory, user_directory),
    ):
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            setter(str(Path(path).resolve()))
    if custom_node_dirs is not None:
        folder_paths.folder_names_and_paths["custom_nodes"] = (
            [str(Path(d).resolve()) for d in custom_node_dirs],
            set(),
        )
    # `utils.extra_config` must be imported before `nodes`, which puts ROOT/comfy (with its own `utils`) first on
    # sys.path.
    import utils.extra_config  # noqa: F401

    # isort: split
    import execution  # noqa: F401
    import server

    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if register_discomfort:
        _register_self(nodes)
    headless = HeadlessServer()
    # Some nodes reach for the global server to report progress; give them the headless one when none runs.
    if getattr(server.PromptServer, "instance", None) is None:
        server.PromptServer.instance = headless
    log.info("ComfyUI at %s booted in-process with %d node classes", root, len(nodes.NODE_CLASS_MAPPINGS))
    return EmbeddedComfy(root, headless)


def _register_self(nodes_module: Any) -> None:
    from .. import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    for name, node_class in NODE_CLASS_MAPPINGS.items():
        nodes_module.NODE_CLASS_MAPPINGS[name] = node_class
        node_class.RELATIVE_PYTHON_MODULE = f"custom_nodes.{PACKAGE_ROOT.name}"
    nodes_module.NODE_DISPLAY_NAME_MAPPINGS.update(NODE_DISPLAY_NAME_MAPPINGS)
