"""The loop nodes: DiscomfortLoop (a tagged region of the graph) and DiscomfortWorkflowLoop (workflow files), thin
fronts over the loop engine."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SettingsError, WorkflowError
from ..ports.anytype import ANY
from ..ports.discovery import parse_tags
from ..serialization.stores import STORAGE_MODES
from .plan import PARKED, plan_loop, prepare_prompt

log = logging.getLogger(__name__)

SOCKETS = 4  # value_1..value_4 in and out, accumulated_1..accumulated_4 out


class DiscomfortLoop:
    """Runs the ports tagged with `body` (and what lies between them) `iterations` times, in-process."""

    DESCRIPTION = (
        "Runs a piece of the graph again and again. The piece is marked by DiscomfortPorts tagged with the loop's "
        "body name: what an OUTPUT port gives in one iteration enters the next through the entry port (INPUT or "
        "PASSTHRU) with the same unique_id. Nodes inside the body, save nodes included, run every iteration."
    )
    CATEGORY = "Discomfort"
    RETURN_TYPES = (*(ANY,) * SOCKETS, *(ANY,) * SOCKETS, "INT")
    RETURN_NAMES = (*(f"value_{k}" for k in range(1, SOCKETS + 1)),
                    *(f"accumulated_{k}" for k in range(1, SOCKETS + 1)), "iterations")  # fmt: skip
    OUTPUT_TOOLTIPS = (
        *(f"the final value of the {k}th uid in `uids`" for k in range(1, SOCKETS + 1)),
        *(f"every iteration's value of the {k}th uid in `accumulate`, joined" for k in range(1, SOCKETS + 1)),
        "how many iterations ran",
    )
    FUNCTION = "run"
    # A loop whose body saves its results is often linked to nothing downstream; it must run all the same.
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "body": ("STRING", {"default": "loop", "tooltip": "The tag that marks this loop's ports."}),
                "iterations": ("INT", {"default": 4, "min": 0, "max": 100_000,
                                       "tooltip": "How many times to run the body (at most, with stop_when)."}),
                "uids": ("STRING", {"default": "", "tooltip": "Comma-separated uids bound, in order, to value_1… "
                                    "(inputs: initial values; outputs: final values)."}),
                "accumulate": ("STRING", {"default": "", "tooltip": "Comma-separated OUTPUT uids whose every value "
                                          "is collected, in order, into accumulated_1…"}),
                "stop_when": ("STRING", {"default": "", "tooltip": "An OUTPUT uid; the loop ends after the "
                                         "iteration in which its value is true."}),
            },
            "optional": {
                **{f"value_{k}": (ANY, {"tooltip": f"initial value of the {k}th uid"}) for k in range(1, SOCKETS + 1)},
                "storage": (list(STORAGE_MODES), {"default": "ram", "tooltip": "Where accumulated values wait: "
                            "ram, disk (a temporary folder), or auto (memory, then disk past 2 GiB)."}),
                "checkpoint": ("STRING", {"default": "", "tooltip": "A folder name under output/discomfort/"
                               "checkpoints: the loop's state is saved there after every iteration."}),
                "resume": ("BOOLEAN", {"default": False, "tooltip": "Continue from the checkpoint's last finished "
                           "iteration instead of starting over."}),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "extra_pnginfo": "EXTRA_PNGINFO",
                       "auth_token_comfy_org": "AUTH_TOKEN_COMFY_ORG", "api_key_comfy_org": "API_KEY_COMFY_ORG"},
        }  # fmt: skip

    @classmethod
    def IS_CHANGED(cls, **_: Any) -> float:
        # The body is not among this node's inputs, so ComfyUI cannot tell when it changed: always run. Loaders in
        # the body stay cached in the loop's private executor.
        return float("nan")

    def run(self, iterations: int, uids: str, accumulate: str, stop_when: str, prompt: dict,
            unique_id: str, storage: str = "ram", checkpoint: str = "", resume: bool = False,
            extra_pnginfo: Any = None, auth_token_comfy_org: str | None = None, api_key_comfy_org: str | None = None,
            **values: Any) -> dict:  # fmt: skip
        from .engine import LoopSettings

        uid_list = _uid_list(uids, "uids", unique_id)
        accumulated = _uid_list(accumulate, "accumulate", unique_id)
        plan = self.plan(prompt, unique_id, values)
        initial = {uid: values[f"value_{k}"] for k, uid in enumerate(uid_list, 1) if f"value_{k}" in values}
        settings = LoopSettings(int(iterations), stop_when.strip() or None, tuple(accumulated), storage,
                                _checkpoint_folder(checkpoint, unique_id), bool(resume))  # fmt: skip
        hidden = {"extra_pnginfo": extra_pnginfo, "auth_token_comfy_org": auth_token_comfy_org,
                  "api_key_comfy_org": api_key_comfy_org}  # fmt: skip
        with self.execute(plan, settings, unique_id, hidden, initial=initial) as record:
            finals = [record.values.get(uid) for uid in uid_list]
            joined = [record.joined(uid) for uid in accumulated]
        # What the body showed (each iteration's saved images) shows on the loop node and lands in the history.
        return {"ui": record.ui, "result": (*_pad(finals), *_pad(joined), record.iterations)}

    @contextlib.contextmanager
    def execute(self, plan: Any, settings: Any, unique_id: str, hidden: dict[str, Any], *,
                initial: dict[str, Any] | None = None, per_iteration: dict | None = None) -> Iterator[Any]:  # fmt: skip
        """Run `plan` on this node's private executor; yield the record, then free what it holds on disk."""
        from .engine import LoopRecord, run_loop

        runner = self._runner(unique_id)
        context = _outer_context()
        runner.bind(_real_server(), context.prompt_id if context else None)
        extra_data = dict(hidden)
        client_id = getattr(runner.proxy.real, "client_id", None)
        if client_id is not None:
            extra_data["client_id"] = client_id
        record = LoopRecord()
        progress = _Progress(unique_id, settings.iterations, runner.proxy.real, client_id)
        try:
            run_loop(plan, settings, runner, initial=initial, prompt_id=context.prompt_id if context else unique_id,
                     extra_data=extra_data, progress=progress, record=record, per_iteration=per_iteration)  # fmt: skip
            yield record
        except BaseException:
            record.close(success=False)
            raise
        record.close()

    @contextlib.contextmanager
    def fan_out(self, plan: Any, settings: Any, unique_id: str, prompt: dict, hidden: dict[str, Any],
                items: list[dict[str, Any]], workers: int) -> Iterator[Any]:  # fmt: skip
        """Run `items` (independent iterations) on `workers` Ray workers, kept for the next prompt so their models
        stay loaded; yield the record, filled in item order. The Ray cluster is $RAY_ADDRESS, set by
        whoever runs the server (a workflow does not choose where it runs), else a local one."""
        from .engine import LoopRecord
        from .ray_workers import WorkerPool

        pool = WorkerPool.acquire(workers, hold=False)  # kept for the server's life, for the next prompt
        server = _real_server()
        client_id = getattr(server, "client_id", None)
        progress = _Progress(unique_id, len(items), server, client_id)
        source = {"loop_node": _prepared_node(prompt, unique_id), "loop_id": unique_id}
        record = LoopRecord()
        try:
            pool.run(plan, source, items, settings, extra_data=hidden, record=record,
                     progress=lambda done, total, _values: progress(done, total))  # fmt: skip
            yield record
        except BaseException:
            record.close(success=False)
            raise
        record.close()

    def plan(self, prompt: dict, unique_id: str, widgets: dict[str, Any]) -> Any:
        """The body this loop runs: the ports tagged with its body name, parked in it when the prompt was queued.
        Takes the widgets naming the body out of `widgets`, which then holds the value_k inputs only."""
        widgets.pop("body", None)
        return plan_loop(_prepared_node(prompt, unique_id), unique_id)

    def _runner(self, unique_id: str):
        # One private executor per loop node, kept on the node instance, which ComfyUI keeps between prompts.
        from .nested import NestedRunner

        runner = getattr(self, "_nested_runner", None)
        if runner is None or runner.loop_node_id != unique_id:
            runner = self._nested_runner = NestedRunner(unique_id)
        return runner


class _Progress:
    """Shows `iteration i/N` on the loop node and moves ComfyUI's progress bar."""

    def __init__(self, node_id: str, total: int, server: Any, client_id: str | None):
        import comfy.utils

        self.node_id, self.total, self.server, self.client_id = node_id, total, server, client_id
        self.bar = comfy.utils.ProgressBar(max(total, 1), node_id=node_id)
        self._say(f"iteration 0/{total}")

    def __call__(self, done: int, total: int) -> None:
        self.bar.update_absolute(done, total)
        self._say(f"iteration {done}/{total}")

    def _say(self, text: str) -> None:
        send = getattr(self.server, "send_progress_text", None)
        if send is not None:
            send(text, self.node_id, self.client_id)


def _prepared_node(prompt: dict, unique_id: str) -> dict:
    node = prompt.get(unique_id) or {}
    if PARKED not in node:
        # Prompts queued through ComfyUI's /prompt or run by Discomfort come prepared. Someone driving a
        # PromptExecutor directly did not prepare this one, so its own run may have executed body nodes too.
        log.warning("loop %s: the prompt was not prepared by Discomfort; its body may also run outside the loop",
                    unique_id)  # fmt: skip
        node = prepare_prompt(prompt).get(unique_id) or node
    return node


def _checkpoint_folder(name: str, loop_id: str) -> Path | None:
    """A checkpoint name from a workflow, as a folder under ComfyUI's output directory; nothing outside it."""
    name = name.strip()
    if not name:
        return None
    import folder_paths

    from ..workflow.files import resolve_under

    root = Path(folder_paths.get_output_directory()) / "discomfort" / "checkpoints"
    try:
        return resolve_under(root, name, "checkpoint folder")
    except WorkflowError as error:
        raise SettingsError(f"loop {loop_id}: {error}") from None


def _uid_list(text: str, widget: str, loop_id: str) -> list[str]:
    uids = list(parse_tags(text))
    if len(uids) > SOCKETS:
        raise SettingsError(f"loop {loop_id}: {widget} names {len(uids)} uids; the node has {SOCKETS} sockets")
    return uids


def _pad(values: list[Any]) -> list[Any]:
    return values + [None] * (SOCKETS - len(values))


def _outer_context() -> Any:
    from . import compat

    return compat.executing_context()


def _real_server() -> Any:
    import server

    return getattr(server.PromptServer, "instance", None)


class DiscomfortWorkflowLoop(DiscomfortLoop):
    """Runs workflow files (stitched in order by port uid) as the loop body, on the same engine."""

    DESCRIPTION = (
        "Runs saved workflow files as a loop: one per line, from ComfyUI's user workflows folder, stitched in order "
        "(an OUTPUT port of one feeds the INPUT port with the same uid in the next). What the pipeline's OUTPUT "
        "ports give in one iteration enters its entry ports with the same uid in the next."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        types = super().INPUT_TYPES()
        required = dict(types["required"])
        del required["body"]
        tooltip = "Workflow files, one per line, relative to the user workflows folder."
        workflows = ("STRING", {"default": "", "multiline": True, "tooltip": tooltip})
        return {**types, "required": {"workflows": workflows, **required}}

    def plan(self, prompt: dict, unique_id: str, widgets: dict[str, Any]) -> Any:
        import folder_paths

        from ..workflow.files import load_json, resolve_under
        from .pipeline import plan_pipeline

        names = [line.strip() for line in str(widgets.pop("workflows", "")).splitlines() if line.strip()]
        if not names:
            raise SettingsError(f"loop {unique_id}: name at least one workflow file, one per line")
        root = Path(folder_paths.get_user_directory()) / "default" / "workflows"
        graphs = []
        for name in names:
            path = resolve_under(root, name)
            if path.suffix != ".json" and not path.exists() and path.with_suffix(".json").exists():
                path = path.with_suffix(".json")  # as ComfyUI lists them: without the extension
            try:
                graphs.append(load_json(path))
            except WorkflowError as error:
                raise WorkflowError(f"{name}: {error}") from None
        return plan_pipeline(graphs, names)
