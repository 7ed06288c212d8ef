"""The loop nodes: DiscomfortLoop (a tagged region of the graph) and DiscomfortWorkflowLoop (workflow files), thin
fronts over the loop engine."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..errors import LoopError, SettingsError, WorkflowError, shown
from ..ports.anytype import ANY
from ..ports.discovery import parse_tags
from ..serialization.stores import DEFAULT_BUDGET_MIB, MIB, STORAGE_MODES
from ..workflow.graph import id_key
from . import compat, outcome
from .plan import FEED_INPUT, PARKED, PlanCache, prepare_prompt
from .proxy import LOOP_MESSAGE
from .steps import Steps

log = logging.getLogger(__name__)

# Up to 16 carried uids: value_1..value_16 in and out, accumulated_1..accumulated_16 out, then `iterations`. The
# frontend shows only the sockets in use; outputs keep these positions, which API prompts link to by index.
SOCKETS = 16
PLAN_CACHE_SIZE = 32  # compiled bodies a loop node keeps, one per body structure it ran
MAX_BUDGET_MIB = 1024**2  # a TiB: beyond any machine's memory, so the widget never stands in the way


def ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


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
        *(f"the final value of the {ordinal(k)} uid in `uids`" for k in range(1, SOCKETS + 1)),
        *(f"every iteration's value of the {ordinal(k)} uid in `accumulate`, joined" for k in range(1, SOCKETS + 1)),
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
                **{f"value_{k}": (ANY, {"tooltip": f"initial value of the {ordinal(k)} uid in `uids`"})
                   for k in range(1, SOCKETS + 1)},
                "storage": (list(STORAGE_MODES), {"default": "ram", "tooltip": "Where accumulated values wait: "
                            "ram, disk (a temporary folder), or auto (memory, then disk past memory_budget_mb)."}),
                "checkpoint": ("STRING", {"default": "", "tooltip": "A folder name under output/discomfort/"
                               "checkpoints: the loop's state is saved there after every iteration."}),
                "resume": ("BOOLEAN", {"default": False, "tooltip": "Continue from the checkpoint's last finished "
                           "iteration instead of starting over."}),
                "memory_budget_mb": ("INT", {"default": DEFAULT_BUDGET_MIB, "min": 0, "max": MAX_BUDGET_MIB,
                                     "tooltip": "With storage auto: how many MiB the accumulated values may hold in "
                                     "memory, all uids together; later values wait on disk."}),
                "keep": ("STRING", {"default": "", "tooltip": "A folder under ComfyUI's output folder: after a "
                         "successful run the accumulated values are stored there, replacing the last run's, for "
                         "Discomfort Load Kept (or discomfort.serialization.read_kept) to read."}),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID", "dynprompt": "DYNPROMPT",
                       **compat.HIDDEN_INPUTS},
        }  # fmt: skip

    @classmethod
    def IS_CHANGED(cls, **_: Any) -> float:
        # The body is not among this node's inputs, so ComfyUI cannot tell when it changed: always run. Loaders in
        # the body stay cached in the loop's private executor.
        return float("nan")

    def run(self, iterations: int, uids: str, accumulate: str, stop_when: str, prompt: dict,
            unique_id: str, storage: str = "ram", checkpoint: str = "", resume: bool = False,
            memory_budget_mb: int = DEFAULT_BUDGET_MIB, keep: str = "", dynprompt: Any = None,
            **values: Any) -> dict:  # fmt: skip
        from .engine import LoopSettings

        self._called_as(unique_id, dynprompt, prompt)
        unique_id = self.loop_id
        hidden = compat.take_hidden(values)
        uid_list = _uid_list(uids, "uids", unique_id)
        accumulated = _uid_list(accumulate, "accumulate", unique_id)
        plan = self.plan(prompt, unique_id, values)
        steps = plan if isinstance(plan, Steps) else Steps(plan)
        if not steps.conditional:  # a conditional pipeline's later files are known only as its path reaches them
            _check_uids(steps.first.plan, uid_list, unique_id)
        initial = {uid: values[f"value_{k}"] for k, uid in enumerate(uid_list, 1) if f"value_{k}" in values}
        initial.update(feeds(values))
        settings = LoopSettings(int(iterations), stop_when.strip() or None, tuple(accumulated), storage,
                                _checkpoint_folder(checkpoint, unique_id), bool(resume),
                                memory_budget=int(memory_budget_mb) * MIB,
                                keep=output_folder(keep, unique_id, "keep", "kept values folder"))  # fmt: skip

        def results(record: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
            finals = [record.values.get(uid) for uid in uid_list]
            joined = [record.joined(uid) for uid in accumulated]
            outputs = (*_pad(finals), *_pad(joined), record.iterations, *self.extra_outputs(record))
            return outputs, _previews(finals, unique_id)

        return self.loop(plan, settings, unique_id, hidden, results, initial=initial)

    def extra_outputs(self, record: Any) -> tuple[Any, ...]:
        """Outputs after `iterations` (a subclass's)."""
        return ()

    def loop(
        self,
        plan: Any,
        settings: Any,
        unique_id: str,
        hidden: dict[str, Any],
        results: Any,
        *,
        initial: dict[str, Any] | None = None,
        per_iteration: dict | None = None,
        fan_out: tuple[list[dict[str, Any]], int] | None = None,
        prompt: dict | None = None,
        after_iteration: Any = None,
    ) -> dict[str, Any]:
        """Run `plan` on this node's private executor and answer ComfyUI as a node does.

        `results(record)` gives the node's outputs and its own UI (previews of the final values). What the body's
        nodes showed goes back to ComfyUI as the nodes of an expansion, so the prompt's history keeps it; after a
        failure or a cancel the expansion ends by raising it (see executor/outcome.py), naming the body node at
        fault when the canvas has it. With `fan_out` (items, workers) the iterations, independent of each other,
        run on Ray workers instead (executor/ray_workers.py), the record filled in item order.
        `after_iteration(done)` is called as each iteration (or item, in order) finishes.
        """
        from .engine import LoopRecord, run_loop

        runner = self._runner(unique_id)
        call_id, real_id = getattr(self, "call_id", unique_id), getattr(self, "real_id", unique_id)
        server, prompt_id, nested = _enclosing_run()
        runner.bind(server, prompt_id, visible=self.visible(plan))
        passed_on = {**compat.inner_extra_data(), **hidden}
        extra_data = dict(passed_on)
        client_id = getattr(server, "client_id", None)
        if client_id is not None:
            extra_data["client_id"] = client_id
        record = LoopRecord()
        report = _Report(unique_id, settings.iterations, server, client_id, prompt_id,
                         marks=() if nested else sorted(runner.proxy.visible, key=id_key))  # fmt: skip

        def progress(done: int, total: int) -> None:
            report(done, total)
            if after_iteration is not None:
                after_iteration(done)

        try:
            if fan_out is None:
                run_loop(
                    plan,
                    settings,
                    runner,
                    initial=initial,
                    prompt_id=prompt_id or unique_id,
                    extra_data=extra_data,
                    progress=progress,
                    record=record,
                    per_iteration=per_iteration,
                )
            else:
                from .ray_workers import WorkerPool

                items, workers = fan_out
                # The workers are kept for the server's life, so the next prompt finds their models loaded. The
                # cluster is $RAY_ADDRESS, set by whoever runs the server: a workflow does not choose where it runs.
                pool = WorkerPool.acquire(workers, hold=False)
                source = {"loop_node": _prepared_node(prompt or {}, unique_id), "loop_id": unique_id}
                pool.run(plan, source, items, settings, extra_data=passed_on, record=record,
                         progress=lambda done, total, _values: progress(done, total))  # fmt: skip
            outputs, ui = results(record)
        except BaseException as error:
            failure = record.failed(error)
            interrupted = compat.is_interrupt(failure)
            report.ended(record, "cancelled" if interrupted else "failed")
            if not (interrupted or isinstance(failure, LoopError)):
                raise  # nothing ran: a bad setting, a body that cannot be planned
            if isinstance(failure, LoopError) and not nested and failure.node_id in runner.proxy.visible:
                outcome.name_failure(prompt_id, real_id, failure.node_id, failure.class_type,
                                     failure.traceback, failure.inputs)  # fmt: skip
            graph, links = outcome.expansion(call_id, record.shown, failure, len(self.RETURN_TYPES))
            return {"result": links, "expand": graph}
        record.close()
        report.ended(record, "settled" if record.stopped_early else "finished")
        # What the body showed on the loop node itself (a workflow file's nodes) goes with the loop's own previews:
        # a replay after them would replace them on the canvas.
        shown = dict(record.shown)
        own = shown.pop(runner.proxy.display_node_id, {})
        ui = {key: [*own.get(key, []), *ui.get(key, [])] for key in {*own, *ui}}
        graph, _ = outcome.expansion(call_id, shown, None, 0)
        return {"ui": ui, "result": outputs, **({"expand": graph} if graph else {})}

    def visible(self, plan: Any) -> frozenset[str]:
        """The body's nodes the user's graph holds, shown on the canvas as themselves: an inline body keeps the
        ids of the graph it was parked from."""
        return plan.shown_ids()

    def plan(self, prompt: dict, unique_id: str, widgets: dict[str, Any]) -> Any:
        """The body this loop runs: the ports tagged with its body name, parked in it when the prompt was queued.
        Takes the widgets naming the body out of `widgets`, which then holds the value_k inputs only."""
        widgets.pop("body", None)
        return self._state(unique_id).plans.plan_loop(_prepared_node(prompt, unique_id), unique_id)

    def _called_as(self, unique_id: str, dynprompt: Any, prompt: dict) -> None:
        """Which loop of the queued prompt this call is: itself, or the one a copy made by ComfyUI's own loop
        stands for (see compat.original_node_id); the id ComfyUI runs it under; the id its errors are reported as."""
        self.call_id = unique_id
        self.loop_id = compat.original_node_id(dynprompt, unique_id, prompt)
        self.real_id = dynprompt.get_real_node_id(unique_id) if dynprompt is not None else unique_id

    def _runner(self, unique_id: str):
        return self._state(unique_id).runner

    def _state(self, loop_id: str) -> _LoopState:
        # A private executor and compiled bodies per loop node, kept on the node instance, which ComfyUI keeps
        # between prompts: loaders in the body load once, a loop nested in another compiles its body once. The
        # copies of a loop that ComfyUI's own loops make are new instances every iteration, so they share the
        # state of the loop they copy, kept here.
        state = getattr(self, "_loop_state", None)
        if state is None or state.loop_id != loop_id:
            copy = getattr(self, "call_id", loop_id) != loop_id
            state = self._loop_state = _copies.state(loop_id) if copy else _LoopState(loop_id)
        return state


class _LoopState:
    """What a loop node keeps from one run to the next: its private executor and its compiled bodies."""

    def __init__(self, loop_id: str):
        from .nested import NestedRunner

        self.loop_id = loop_id
        self.runner = NestedRunner(loop_id)
        self.plans = PlanCache(PLAN_CACHE_SIZE)


class _Copies:
    """The state of loops ComfyUI's own loops copy, by the loop copied (and the run around it), a few kept."""

    def __init__(self, size: int = 8):
        self.size = size
        self._states: OrderedDict[tuple[int, str], _LoopState] = OrderedDict()

    def state(self, loop_id: str) -> _LoopState:
        from .nested import enclosing_proxy

        key = (id(enclosing_proxy()), loop_id)
        if key not in self._states:
            self._states[key] = _LoopState(loop_id)
            while len(self._states) > self.size:
                self._states.popitem(last=False)
        self._states.move_to_end(key)
        return self._states[key]


_copies = _Copies()


def feeds(values: dict[str, Any]) -> dict[str, Any]:
    """Take out of `values` what the nodes that stay outside the body give it, by the uid of their entry ports."""
    return {key[len(FEED_INPUT) :]: values.pop(key) for key in [k for k in values if k.startswith(FEED_INPUT)]}


def output_slot(name: str) -> int:
    """The position of a loop node's output socket (`value_k`, `accumulated_k`, `iterations`): what links name."""
    return DiscomfortLoop.RETURN_NAMES.index(name)


class _Report:
    """What the loop says about itself as it runs: ComfyUI's progress bar and `iteration i/N` on the loop node, a
    `discomfort.loop` message (iterations, state, time per iteration) for the frontend extension and the CLI, and
    the prompt's overall progress.

    The frontend counts a prompt's progress as the nodes it queued that were reported done (compat); a body's
    nodes never are in the outer run, so the outermost loop reports them done in proportion to its iterations.
    """

    def __init__(self, node_id: str, total: int, server: Any, client_id: str | None, prompt_id: str | None,
                 marks: list[str]):  # fmt: skip
        import comfy.utils

        self.node_id, self.total, self.server, self.client_id = node_id, total, server, client_id
        self.prompt_id, self.marks, self.marked = prompt_id, marks, 0
        self.started = time.perf_counter()
        self.bar = comfy.utils.ProgressBar(max(total, 1), node_id=node_id)
        self._say(f"iteration 0/{total}")
        self._send(0, "running")

    def __call__(self, done: int, total: int) -> None:
        self.bar.update_absolute(done, total)
        self._say(f"iteration {done}/{total}")
        self._send(done, "running")
        due = len(self.marks) * done // max(total, 1)
        if due > self.marked and self.server is not None:
            self.server.send_sync("execution_cached", {"nodes": self.marks[self.marked : due],
                                                       "prompt_id": self.prompt_id}, self.client_id)  # fmt: skip
            self.marked = due

    def ended(self, record: Any, state: str) -> None:
        self._send(record.iterations, state, record.seconds)

    def _send(self, done: int, state: str, seconds: list[float] | None = None) -> None:
        if self.server is None:
            return
        message = {"prompt_id": self.prompt_id, "node": self.node_id, "iteration": done, "total": self.total,
                   "state": state, "elapsed": time.perf_counter() - self.started}  # fmt: skip
        if seconds:
            message["seconds_per_iteration"] = sum(seconds) / len(seconds)
        self.server.send_sync(LOOP_MESSAGE, message, self.client_id)

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
    """A checkpoint name from a workflow, as a folder under <output>/discomfort/checkpoints; nothing outside it."""
    return output_folder(name, loop_id, "checkpoint", "checkpoint folder", ("discomfort", "checkpoints"))


def output_folder(name: Any, loop_id: str, widget: str, what: str, under: tuple[str, ...] = ()) -> Path | None:
    """A folder a workflow's `widget` names, inside ComfyUI's output folder (in its subfolder `under`); nothing
    outside it. None when the name is empty."""
    import folder_paths

    from ..workflow.files import checked_name, resolve_under

    root = Path(folder_paths.get_output_directory()).joinpath(*under)
    try:
        name = checked_name(name, widget).strip()
        return resolve_under(root, name, what, widget=widget) if name else None
    except WorkflowError as error:
        raise SettingsError(f"loop {loop_id}: {error}") from None


def _check_uids(plan: Any, uids: list[str], loop_id: str) -> None:
    """Every uid bound to a value_k socket is one of the body's ports: another would only ever give None."""
    known = set(plan.entries) | set(plan.exits)
    unknown = [uid for uid in uids if uid not in known]
    if unknown:
        raise SettingsError(
            f"loop {loop_id}: uids names {', '.join(map(repr, unknown))}, which no port of body "
            f"{plan.body_name!r} has (its uids: {', '.join(sorted(known)) or 'none'})"
        )


def _uid_list(text: str, widget: str, loop_id: str) -> list[str]:
    uids = list(parse_tags(text))
    if len(uids) > SOCKETS:
        raise SettingsError(f"loop {loop_id}: {widget} names {len(uids)} uids; the node has {SOCKETS} sockets")
    return uids


def _pad(values: list[Any]) -> list[Any]:
    return values + [None] * (SOCKETS - len(values))


def _enclosing_run() -> tuple[Any, str | None, bool]:
    """The server this loop reports to, the prompt id its reports carry, and whether it is nested in another loop
    (it then talks to that loop's proxy, which shows it as part of the outermost prompt)."""
    from .nested import enclosing_proxy

    proxy = enclosing_proxy()
    if proxy is not None:
        return proxy, proxy.outer_prompt_id, True
    import server

    context = compat.executing_context()
    return getattr(server.PromptServer, "instance", None), context.prompt_id if context else None, False


def _previews(values: list[Any], node_id: str) -> dict[str, Any]:
    """Previews of the final values that are images, shown once on the loop node."""
    from ..nodes.save import preview_images

    images = [image for value in values for image in preview_images(value, f"discomfort_loop_{node_id}")]
    return {"images": images} if images else {}


class DiscomfortWorkflowLoop(DiscomfortLoop):
    """Runs workflow files (stitched in order by port uid) as the loop body, on the same engine; files that give
    `next` choose the files of the next iteration."""

    DESCRIPTION = (
        "Runs saved workflow files as a loop: one per line, from ComfyUI's user workflows folder, stitched in order "
        "(an OUTPUT port of one feeds the INPUT port with the same uid in the next). What the pipeline's OUTPUT "
        "ports give in one iteration enters its entry ports with the same uid in the next. A file whose OUTPUT port "
        "`next` gives a file name picks the workflow of the next iteration (empty or 'done' ends the loop)."
    )
    RETURN_TYPES = (*DiscomfortLoop.RETURN_TYPES, "STRING")
    RETURN_NAMES = (*DiscomfortLoop.RETURN_NAMES, "path")
    OUTPUT_TOOLTIPS = (*DiscomfortLoop.OUTPUT_TOOLTIPS, "the workflow file(s) each iteration ran, one line each")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        types = super().INPUT_TYPES()
        required = dict(types["required"])
        del required["body"]
        tooltip = "Workflow files, one per line, relative to the user workflows folder."
        workflows = ("STRING", {"default": "", "multiline": True, "tooltip": tooltip})
        return {**types, "required": {"workflows": workflows, **required}}

    def visible(self, plan: Any) -> frozenset[str]:
        return frozenset()  # the files' nodes are not in the user's graph (their ids may be, for other nodes)

    def plan(self, prompt: dict, unique_id: str, widgets: dict[str, Any]) -> Any:
        """The steps of the files `workflows` names (executor/steps.py): conditional when they give `next`, whose
        names are found in the user workflows folder as well."""
        import folder_paths

        from .pipeline import file_steps

        text = widgets.pop("workflows", "")
        if not isinstance(text, str):
            raise SettingsError(f"loop {unique_id}: workflows {shown(text)} is not text")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if not names:
            raise SettingsError(f"loop {unique_id}: name at least one workflow file, one per line")
        try:
            return file_steps(Path(folder_paths.get_user_directory()) / "default" / "workflows", names)
        except WorkflowError as error:
            raise WorkflowError(f"loop {unique_id}: {error}") from None

    def extra_outputs(self, record: Any) -> tuple[Any, ...]:
        return ("\n".join(" + ".join(names) for names in record.path),)
