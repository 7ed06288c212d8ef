"""The Python API: workflow files run as loops on a ComfyUI embedded in this process.

    import discomfort

    with discomfort.Runtime() as rt:
        result = rt.run(["load.json", "refine.json"], inputs={"image": tensor}, iterations=5,
                        until="done", accumulate=["image"], storage="auto", checkpoint="runs/x")
        result.values["image"], result.accumulated["image"], result.iterations

A front over the loop engine, like the loop node and the CLI: files are converted (UI to API) from the live node
definitions, stitched into one pipeline by uid, compiled as one loop body and run by the same engine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Workflow = str | os.PathLike | Mapping[str, Any]


@dataclass
class RunResult:
    """What a run produced, by uid."""

    values: dict[str, Any]  # the last value of every uid the pipeline gives (and of the ones it took)
    accumulated: dict[str, Any]  # every iteration's value of the accumulated uids, joined along the batch
    iterations: int
    seconds: list[float] = field(default_factory=list)  # per iteration
    images: list[dict[str, str]] = field(default_factory=list)  # files the pipeline's save nodes wrote
    stopped_early: bool = False
    # Loops inside the workflows, by node id: their last report ("iteration", "total", "state", timings)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)


class Runtime:
    """An embedded ComfyUI (the provisioned one, or `comfyui` / $COMFYUI_PATH) to run workflow files on.

    Args:
        comfyui: the ComfyUI folder.
        output_directory: where save nodes write (ComfyUI's output folder by default).
        input_directory, user_directory: ComfyUI's input and user folders.
        custom_nodes: custom_nodes folders to load besides ComfyUI's own.
        api_nodes: load ComfyUI's API (partner) nodes too.
    """

    def __init__(self, comfyui: str | os.PathLike | None = None, *, output_directory: str | os.PathLike | None = None,
                 input_directory: str | os.PathLike | None = None, user_directory: str | os.PathLike | None = None,
                 custom_nodes: Sequence[str | os.PathLike] = (), api_nodes: bool = False):  # fmt: skip
        self._options = dict(output_directory=output_directory, input_directory=input_directory,
                             user_directory=user_directory, extra_custom_node_dirs=tuple(custom_nodes),
                             api_nodes=api_nodes)  # fmt: skip
        self._comfyui = comfyui
        self._comfy: Any = None
        self._runner: Any = None

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
                self._comfy.set_output_directory(self._options["output_directory"])

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

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
            checkpoint: str | os.PathLike | None = None, resume: bool = False,
            progress: Callable[[int, int, Mapping[str, Any]], None] | None = None,
            loop_progress: Callable[[Mapping[str, Any]], None] | None = None) -> RunResult:  # fmt: skip
        """Run the pipeline `iterations` times; what an OUTPUT port gives feeds the entry port of the same uid.

        Args:
            workflows: file paths or dicts, UI or API format; several are stitched in order.
            inputs: iteration-0 values by uid (tensors, strings, numbers, anything a port can carry).
            until: uid of an OUTPUT port; the loop ends after the iteration in which its value is true.
            accumulate: uids whose every iteration's value is collected (and joined along the batch).
            storage: where accumulated values wait: "ram", "disk" or "auto".
            checkpoint, resume: a folder to commit the state to after every iteration, and whether to continue
                from it.
            progress: called after every iteration with (finished, planned, latest values by uid).
            loop_progress: called with each report of a loop inside the workflows (see `RunResult.loops`).

        Raises:
            WorkflowError: a file is malformed, a node type unknown, ports set up wrongly.
            LoopError: a node failed; names the iteration and the node, and keeps finished iterations in `.record`.
        """
        from .executor.engine import LoopRecord, LoopSettings, run_loop
        from .executor.plan import plan_workflow
        from .executor.proxy import LOOP_MESSAGE

        names = " + ".join(_name(item) for item in _as_list(workflows))
        plan = plan_workflow(self.pipeline(workflows), names)  # the same plan the workflow-loop node makes
        settings = LoopSettings(iterations, until, tuple(accumulate), storage,
                                Path(checkpoint) if checkpoint is not None else None, resume)  # fmt: skip
        record = LoopRecord()
        runner = self._nested_runner()
        runner.bind(self._comfy.server, None, visible=plan.shown_ids())  # no canvas: every node is itself
        loops: dict[str, dict[str, Any]] = {}

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total, record.values)

        def listen(event: str, data: Any) -> None:
            if event == LOOP_MESSAGE:
                loops[data["node"]] = data
                if loop_progress is not None:
                    loop_progress(data)

        self._comfy.server.listeners.append(listen)
        try:
            self._comfy.call(run_loop, plan, settings, runner, initial=dict(inputs or {}), prompt_id=uuid.uuid4().hex,
                             extra_data={}, progress=report, record=record)  # fmt: skip
            accumulated = {uid: record.joined(uid) for uid in settings.accumulate}
        except BaseException as error:
            record.fail(error)
        finally:
            self._comfy.server.listeners.remove(listen)
        record.close()
        return RunResult(dict(record.values), accumulated, record.iterations, list(record.seconds),
                         list(record.ui.get("images", [])), record.stopped_early, loops)  # fmt: skip

    def run_sequential(self, workflows: Workflow | Sequence[Workflow], inputs: Mapping[str, Any] | None = None,
                       **options: Any) -> RunResult:  # fmt: skip
        """Run several workflows one after the other as one stitched pipeline (once, unless `iterations` says)."""
        return self.run(workflows, inputs, **options)

    def _nested_runner(self) -> Any:
        # One private executor for the Runtime: loaders in the pipeline stay cached from one run to the next.
        from .executor.nested import NestedRunner

        if self._runner is None:
            self._runner = NestedRunner("workflow")
        return self._runner


def _as_list(workflows: Workflow | Sequence[Workflow]) -> list[Workflow]:
    if isinstance(workflows, (str, os.PathLike, Mapping)):
        return [workflows]
    return list(workflows)


def _name(workflow: Workflow) -> str:
    return Path(workflow).name if isinstance(workflow, (str, os.PathLike)) else "workflow"
