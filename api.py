"""The Python API: workflow files run as loops on a ComfyUI embedded in this process.

    import discomfort

    with discomfort.Runtime() as rt:
        result = rt.run(["load.json", "refine.json"], inputs={"image": tensor}, iterations=5,
                        until="done", accumulate=["image"], storage="auto", checkpoint="runs/x")
        result.values["image"], result.accumulated["image"], result.iterations

        with rt.session({"image": tensor}) as s:     # one file at a time, the next one chosen in code
            while s.run("judge.json").values["score"] < 0.8:
                s.run("refine.json")

A front over the loop engine, like the loop node and the CLI: files are converted (UI to API) from the live node
definitions, stitched into one pipeline by uid, compiled as one loop body and run by the same engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .serialization.stores import DEFAULT_BUDGET_MIB, MIB

Workflow = str | os.PathLike | Mapping[str, Any]
PLANS_KEPT = 32  # planned pipelines a Runtime keeps, by their files' content


@dataclass
class RunResult:
    """What a run produced, by uid."""

    values: dict[str, Any]  # the last value of every uid the pipeline gives (and of the ones it took)
    accumulated: dict[str, Any]  # every iteration's value of the accumulated uids, joined along the batch
    iterations: int
    seconds: list[float] = field(default_factory=list)  # per iteration
    images: list[dict[str, str]] = field(default_factory=list)  # files the pipeline's save nodes wrote
    stopped_early: bool = False
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (iteration or item number, why), on_error skip
    # Loops inside the workflows, by node id: their last report ("iteration", "total", "state", timings)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The workflow file(s) each iteration ran ("a.json + b.json" for a stitched step): a conditional pipeline's
    # path through its files
    path: list[str] = field(default_factory=list)


class Runtime:
    """An embedded ComfyUI (the provisioned one, or `comfyui` / $COMFYUI_PATH) to run workflow files on.

    Args:
        comfyui: the ComfyUI folder.
        output_directory: where save nodes write (ComfyUI's output folder by default), until `close()`.
        input_directory, user_directory, temp_directory: ComfyUI's input, user and temp folders.
        custom_nodes: the custom_nodes folders to load instead of ComfyUI's own (its own when None).
        extra_custom_nodes: custom_nodes folders to load besides those.
        api_nodes: load ComfyUI's API (partner) nodes too.
    """

    def __init__(self, comfyui: str | os.PathLike | None = None, *, output_directory: str | os.PathLike | None = None,
                 input_directory: str | os.PathLike | None = None, user_directory: str | os.PathLike | None = None,
                 temp_directory: str | os.PathLike | None = None,
                 custom_nodes: Sequence[str | os.PathLike] | None = None,
                 extra_custom_nodes: Sequence[str | os.PathLike] = (), api_nodes: bool = False):  # fmt: skip
        self._options = dict(output_directory=output_directory, input_directory=input_directory,
                             user_directory=user_directory, temp_directory=temp_directory,
                             custom_node_dirs=custom_nodes, extra_custom_node_dirs=tuple(extra_custom_nodes),
                             api_nodes=api_nodes)  # fmt: skip
        self._comfyui = comfyui
        self._comfy: Any = None
        self._output_before: Path | None = None  # the output folder to give back on close
        self._runner: Any = None
        self._plans: OrderedDict[str, Any] = OrderedDict()
        self._holds_workers = False  # map()'s Ray workers, kept until close() so their models stay loaded

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(self) -> None:
        """Boot ComfyUI in this process (once per process; later Runtimes share it)."""
        from .executor.embedded import boot

        if self._comfy is None:
            self._comfy = boot(self._comfyui, **self._options)
            if self._options["output_directory"] is not None:
                # The ComfyUI of this process may have been booted before, for others: they get theirs back.
                self._output_before = self._comfy.output_directory
                self._comfy.set_output_directory(self._options["output_directory"])

    def close(self) -> None:
        """Free the private executor, and stop map()'s workers (and the local Ray started for them)."""
        if self._holds_workers:
            from .executor.ray_workers import WorkerPool

            WorkerPool.release()
            self._holds_workers = False
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._output_before is not None:
            self._comfy.set_output_directory(self._output_before)
            self._output_before = None

    def load(self, workflow: Workflow) -> dict[str, Any]:
        """A workflow (file path or dict, UI or API format) as an API prompt."""
        return self.pipeline([workflow])

    def pipeline(self, workflows: Workflow | Sequence[Workflow]) -> dict[str, Any]:
        """Several workflows stitched by uid into one API prompt (one workflow comes back as it is)."""
        from .executor.pipeline import pipeline_prompt
        from .workflow.files import load_json

        self.start()
        items = _as_list(workflows)
        graphs = [load_json(item) if isinstance(item, (str, os.PathLike)) else item for item in items]
        return pipeline_prompt(graphs, [_name(item) for item in items])

    def run(self, workflows: Workflow | Sequence[Workflow], inputs: Mapping[str, Any] | None = None, *,
            iterations: int = 1, until: str | None = None, accumulate: Sequence[str] = (), storage: str = "ram",
            memory_budget_mb: int = DEFAULT_BUDGET_MIB, keep: str | os.PathLike | None = None,
            checkpoint: str | os.PathLike | None = None, resume: bool = False,
            workflows_folder: str | os.PathLike | None = None,
            progress: Callable[[int, int, Mapping[str, Any]], None] | None = None,
            loop_progress: Callable[[Mapping[str, Any]], None] | None = None) -> RunResult:  # fmt: skip
        """Run the pipeline `iterations` times; what its exit port of a uid gives feeds its entry of that uid.

        When the pipeline gives the uid `next` it is conditional: each iteration runs the workflow file(s) the
        previous one's `next` named (one per line; empty or "done" ends the run, as does a file that gives no
        `next`), values carried across by uid, the files taken in `RunResult.path`.

        Args:
            workflows: file paths or dicts, UI or API format; several are stitched in order.
            inputs: iteration-0 values by uid (tensors, strings, numbers, anything a port can carry).
            until: uid of an OUTPUT port; the loop ends after the iteration in which its value is true.
            accumulate: uids whose every iteration's value is collected (and joined along the batch).
            storage: where accumulated values wait: "ram", "disk" or "auto".
            memory_budget_mb: with storage "auto", the MiB accumulated values hold in memory (all uids together)
                before later ones wait on disk.
            keep: a folder (relative to the output folder) to store the accumulated values in after the run
                succeeds, replacing an earlier run's; `discomfort.serialization.read_kept` reads them back.
            checkpoint, resume: a folder to commit the state to after every iteration, and whether to continue
                from it (a conditional pipeline continues with the file(s) it was about to run).
            workflows_folder: where the names `next` gives are found (default: the first file's folder); a name
                that leads out of it is refused.
            progress: called after every iteration with (finished, planned, latest values by uid).
            loop_progress: called with each report of a loop inside the workflows (see `RunResult.loops`).

        Raises:
            WorkflowError: a file is malformed, a node type unknown, ports set up wrongly.
            LoopError: a node failed; names the iteration and the node, and keeps finished iterations in `.record`.
        """
        from .executor.engine import LoopSettings

        steps = self._steps(workflows, workflows_folder)  # the steps the workflow-loop node makes of its files
        settings = LoopSettings(iterations, until, tuple(accumulate), storage,
                                Path(checkpoint) if checkpoint is not None else None, resume,
                                memory_budget=_budget_bytes(memory_budget_mb), keep=self._kept(keep))  # fmt: skip
        return self._result(lambda record, report: self.run_plan(steps, settings, initial=inputs, progress=report,
                                                                 record=record), settings, progress,
                            loop_progress=loop_progress)  # fmt: skip

    def session(self, values: Mapping[str, Any] | None = None) -> Session:
        """Workflow files run one at a time, the next one chosen in code (see `Session`)."""
        return Session(self, values)

    def map(self, workflows: Workflow | Sequence[Workflow], items: Sequence[Mapping[str, Any]] | str | os.PathLike,
            inputs: Mapping[str, Any] | None = None, *, workers: int = 0, address: str | None = None,
            accumulate: Sequence[str] = (), storage: str = "ram", memory_budget_mb: int = DEFAULT_BUDGET_MIB,
            on_error: str = "stop", checkpoint: str | os.PathLike | None = None, resume: bool = False,
            progress: Callable[[int, int, Mapping[str, Any]], None] | None = None) -> RunResult:  # fmt: skip
        """Run the pipeline once per item, the items independent of each other, on `workers` Ray workers.

        Each worker is a process (on this machine or a cluster's) booting this ComfyUI with the same custom nodes
        and folders; it keeps its models loaded between items and between calls, until close(). Items go to
        workers as they free up; results come back in item order. A pipeline that carries a value from one
        iteration to the next is refused: its iterations need each other.

        Args:
            workflows: file paths or dicts, as for run().
            items: one dict of values by uid per item, or a folder of images: each file an item giving the uids
                image, mask, filename and index, as the folder loop does. The body's `iteration` entry takes the
                item's index.
            inputs: values by uid that every item takes.
            workers: how many workers; 0 runs the items in this process, one after the other, on the same engine.
            address: the Ray cluster to join (e.g. "head-node:6379", or $RAY_ADDRESS); without one, the cluster
                this process is connected to, else a local Ray started for the workers and stopped by close().
                Several machines need ComfyUI, the custom nodes and the models at the same paths, and the output
                folder on a shared disk.
            accumulate: uids whose every item's value comes back (through Ray's object store) and is joined.
            storage, memory_budget_mb: where accumulated values wait, as for run().
            on_error: "stop", or "skip" an item whose body fails (named in the result's `skipped`).
            checkpoint, resume: a folder recording each finished item, and whether to do only the unfinished ones.
            progress: called as items finish, in item order, with (handled, all items, that item's values).

        Raises:
            SettingsError: a carried pipeline, items naming uids the pipeline does not take, bad settings.
            LoopError: an item failed (with on_error "stop"); names the item and the node.
        """
        from .errors import SettingsError
        from .executor import fanout
        from .executor.engine import LoopSettings
        from .executor.plan import plan_workflow
        from .executor.steps import NEXT_UID

        names = " + ".join(_name(item) for item in _as_list(workflows))
        prompt = self.pipeline(workflows)
        plan = plan_workflow(prompt, names)
        fanout.check_independent(plan)
        if NEXT_UID in plan.exits:
            raise SettingsError(f"{names} gives {NEXT_UID!r}: the file it names runs after it, in order; a "
                                "conditional pipeline does not fan out over items (use run())")  # fmt: skip
        if isinstance(items, (str, os.PathLike)):
            from .nodes.folder import list_images

            items = fanout.folder_items(list_images(Path(items), "images"))
        inputs = dict(inputs or {})
        checked = fanout.check_items(plan, items, inputs)
        settings = LoopSettings(len(checked), None, tuple(accumulate), storage,
                                Path(checkpoint) if checkpoint is not None else None, resume, on_error,
                                _budget_bytes(memory_budget_mb))  # fmt: skip
        if workers == 0:
            return self._result(lambda record, report: self.run_plan(
                plan, settings, initial=inputs, progress=report, record=record,
                per_iteration=fanout.items_as_iterations(checked, plan)), settings, progress)  # fmt: skip
        pool = self._worker_pool(workers, address)
        source = {"workflow": prompt, "name": names}
        return self._result(lambda record, report: self._comfy.call(
            pool.run, plan, source, checked, settings, initial=inputs, progress=report, record=record),
            settings, progress, given=True)  # fmt: skip

    def run_plan(self, plan: Any, settings: Any, *, initial: Mapping[str, Any] | None = None,
                 per_iteration: Mapping[str, Callable[[int], Any]] | None = None,
                 progress: Callable[[int, int], None] | None = None, record: Any = None,
                 extra_data: Mapping[str, Any] | None = None, prompt_id: str | None = None,
                 lane: bool = False) -> Any:  # fmt: skip
        """A compiled plan (executor.plan), or the steps of a pipeline (executor.steps), run by the loop engine on
        this Runtime's private executor (with `lane`, one of its own for this plan, whose cache is kept while
        other plans run), on ComfyUI's prompt thread; returns the LoopRecord. What run(), map() and sessions stand
        on, and what each of map()'s workers does with its item."""
        from .executor.engine import run_loop
        from .executor.proxy import EVERY_NODE

        self.start()
        runner = self._nested_runner()
        runner.bind(self._comfy.server, None, visible=EVERY_NODE)  # no canvas: every node is itself
        if lane:
            runner = runner.lane(plan.fingerprint)
        return self._comfy.call(run_loop, plan, settings, runner, initial=dict(initial or {}),
                                prompt_id=prompt_id or uuid.uuid4().hex, extra_data=dict(extra_data or {}),
                                progress=progress, record=record, per_iteration=per_iteration)  # fmt: skip

    def _planned(self, workflows: Workflow | Sequence[Workflow], names: Sequence[str] | None = None) -> Any:
        """The plan of a pipeline of workflows (files or dicts), kept by their content: a file run again (by a
        session, by `next`) is planned once while it does not change."""
        from .executor.pipeline import plan_pipeline
        from .workflow.files import load_json

        self.start()
        items = _as_list(workflows)
        graphs = [load_json(item) if isinstance(item, (str, os.PathLike)) else item for item in items]
        names = list(names) if names is not None else [_name(item) for item in items]
        key = hashlib.sha256(json.dumps([names, graphs], sort_keys=True, default=repr).encode()).hexdigest()
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = plan_pipeline(graphs, names)
            while len(self._plans) > PLANS_KEPT:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return plan

    def _steps(self, workflows: Workflow | Sequence[Workflow], folder: str | os.PathLike | None) -> Any:
        """The steps of a pipeline: its plan every iteration, or (when it gives `next`) the files `next` names,
        found inside `folder` (by default the first file's)."""
        from .errors import WorkflowError
        from .executor.pipeline import workflow_path
        from .executor.steps import pipeline_steps

        items = _as_list(workflows)
        if folder is None and isinstance(items[0], (str, os.PathLike)):
            folder = Path(items[0]).parent
        names = [_name(item) for item in items]

        def plan_of(following: tuple[str, ...]) -> Any:
            if folder is None:
                raise WorkflowError(f"{' + '.join(names)} was given as a dict, so there is no folder to find "
                                    f"{' + '.join(following)} in: pass workflows_folder")  # fmt: skip
            return self._planned([workflow_path(folder, name, "next") for name in following], following)

        return pipeline_steps(names, self._planned(items), plan_of)

    def _result(self, execute: Callable[[Any, Any], Any], settings: Any, progress: Callable[..., None] | None, *,
                given: bool = False, loop_progress: Callable[[Mapping[str, Any]], None] | None = None,
                ) -> RunResult:  # fmt: skip
        """Run `execute(record, report)` and make the RunResult; on failure, what the record holds on disk stays.
        Reports of the loops inside the workflows are collected on the way (and handed to `loop_progress`)."""
        from .executor.engine import LoopRecord
        from .executor.proxy import LOOP_MESSAGE

        record = LoopRecord()
        loops: dict[str, dict[str, Any]] = {}

        def report(done: int, total: int, values: Mapping[str, Any] | None = None) -> None:
            if progress is not None:
                progress(done, total, values if given else record.values)

        def listen(event: str, data: Any) -> None:
            if event == LOOP_MESSAGE:
                loops[data["node"]] = data
                if loop_progress is not None:
                    loop_progress(data)

        self.start()
        self._comfy.server.listeners.append(listen)
        try:
            execute(record, report)
            accumulated = {uid: record.joined(uid) for uid in settings.accumulate}
        except BaseException as error:
            record.fail(error)
        finally:
            self._comfy.server.listeners.remove(listen)
        record.close()
        return RunResult(dict(record.values), accumulated, record.iterations, list(record.seconds),
                         list(record.ui.get("images", [])), record.stopped_early, list(record.skipped), loops,
                         [" + ".join(names) for names in record.path])  # fmt: skip

    def run_sequential(self, workflows: Workflow | Sequence[Workflow], inputs: Mapping[str, Any] | None = None,
                       **options: Any) -> RunResult:  # fmt: skip
        """Run several workflows one after the other as one stitched pipeline (once, unless `iterations` says)."""
        return self.run(workflows, inputs, **options)

    def _kept(self, keep: str | os.PathLike | None) -> Path | None:
        """Where `keep` stores accumulated values: a relative folder is inside the output folder."""
        if keep is None:
            return None
        import folder_paths

        self.start()
        return Path(folder_paths.get_output_directory()) / keep

    def _nested_runner(self) -> Any:
        # One private executor for the Runtime: loaders in the pipeline stay cached from one run to the next.
        from .executor.nested import NestedRunner

        if self._runner is None:
            self._runner = NestedRunner("workflow")
        return self._runner

    def _worker_pool(self, workers: int, address: str | None) -> Any:
        from .executor.ray_workers import WorkerPool

        pool = WorkerPool.acquire(workers, address, hold=not self._holds_workers)
        self._holds_workers = True
        return pool


class Session:
    """Workflow files run one at a time, for logic that does not fit in a graph: the next file chosen in code.

    Each `run` is a run of the same engine on the Runtime's caches: a file is planned and validated once, and
    runs on an executor of its own, so its models stay loaded while the other files run. Values carry from one
    run to the next by uid, as between the files of a conditional pipeline: a file's entry takes the latest value
    any earlier run gave its uid (or that the session started with).

        with rt.session({"image": photo}) as s:
            while s.run("judge.json").values["score"] < 0.8:
                s.run("refine.json")
            s.run("upscale.json").values["image"], s.path
    """

    def __init__(self, runtime: Runtime, values: Mapping[str, Any] | None = None):
        self.runtime = runtime
        self.values: dict[str, Any] = dict(values or {})  # the latest value of every uid, given or taken
        self.path: list[str] = []  # the files each run ran

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.values.clear()  # the values are the caller's to keep (from the results); the caches stay

    def run(self, workflows: Workflow | Sequence[Workflow], values: Mapping[str, Any] | None = None, *,
            iterations: int = 1, until: str | None = None, accumulate: Sequence[str] = (), storage: str = "ram",
            memory_budget_mb: int = DEFAULT_BUDGET_MIB,
            progress: Callable[[int, int, Mapping[str, Any]], None] | None = None) -> RunResult:  # fmt: skip
        """Run `workflows` (a file, or several stitched) `iterations` times, on the values the session holds and
        `values` (which win); what it gives joins the session's values. Options as for `Runtime.run`.

        Raises:
            SettingsError: the workflow takes a uid that no earlier run gave, `values` does not hold, and nothing
                in the file feeds; named with the file.
        """
        from .errors import SettingsError
        from .executor.engine import LoopSettings
        from .executor.plan import ITERATION_UID

        runtime = self.runtime
        plan = runtime._planned(workflows)
        held = {**self.values, **(values or {})}
        initial = {uid: held[uid] for uid in plan.entries if uid in held}
        missing = [uid for uid in plan.entries
                   if uid not in initial and uid != ITERATION_UID and not plan.uid_has_feeder(uid)]  # fmt: skip
        if missing:
            raise SettingsError(f"{plan.loop_id} takes uid {', '.join(map(repr, missing))}, which no earlier run of "
                                "this session gave and `values` does not hold")  # fmt: skip
        settings = LoopSettings(iterations, until, tuple(accumulate), storage,
                                memory_budget=_budget_bytes(memory_budget_mb))  # fmt: skip
        result = runtime._result(lambda record, report: runtime.run_plan(
            plan, settings, initial=initial, progress=report, record=record, lane=True),
            settings, progress)  # fmt: skip
        self.values.update(initial)
        self.values.update(result.values)
        self.path.append(plan.loop_id)
        return result


def _as_list(workflows: Workflow | Sequence[Workflow]) -> list[Workflow]:
    if isinstance(workflows, (str, os.PathLike, Mapping)):
        return [workflows]
    return list(workflows)


def _budget_bytes(mebibytes: Any) -> int:
    from .errors import SettingsError

    if isinstance(mebibytes, bool) or not isinstance(mebibytes, int) or mebibytes < 0:
        raise SettingsError(f"memory_budget_mb is a whole number of MiB, 0 or more, got {mebibytes!r}")
    return mebibytes * MIB


def _name(workflow: Workflow) -> str:
    return Path(workflow).name if isinstance(workflow, (str, os.PathLike)) else "workflow"
