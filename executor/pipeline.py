"""Workflow files as one loop body: converted from the running ComfyUI's node definitions, stitched by uid; and
named by a workflow (a loop node's `workflows`, a `next` port), found inside the folder they may be read from."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import WorkflowError
from ..workflow.files import load_json, resolve_under
from .plan import LoopPlan, plan_workflow
from .steps import Steps, pipeline_steps


def pipeline_prompt(graphs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """UI or API workflows as one API prompt: each converted, several stitched in order (one comes back as it is).
    Errors name the workflow at fault."""
    from ..ports.stitch import stitch_api
    from ..workflow.convert import ui_to_api
    from .node_defs import LiveNodeDefs

    defs = LiveNodeDefs()
    prompts = []
    for name, graph in zip(names, graphs, strict=True):
        try:
            prompts.append(ui_to_api(graph, defs))
        except WorkflowError as error:
            raise WorkflowError(f"{name}: {error}") from None
    return prompts[0] if len(prompts) == 1 else stitch_api(prompts, list(names))


def plan_pipeline(graphs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> LoopPlan:
    """The loop plan of a pipeline of workflows (see `pipeline_prompt`); every linked port is one of its ports."""
    return plan_workflow(pipeline_prompt(graphs, names), " + ".join(names))


def workflow_path(root: str | os.PathLike, name: str, widget: str = "workflows") -> Path:
    """The workflow file `name` (given by `widget`) inside `root`; a name that leaves it is refused. As ComfyUI
    lists workflows without their extension, a name that is no file finds the one with `.json` added (checked on
    its own, so that a link named <name>.json is refused as well)."""
    path = resolve_under(root, name, widget=widget)
    if path.suffix != ".json" and not path.exists():
        with_extension = resolve_under(root, f"{name}.json", widget=widget)
        path = with_extension if with_extension.exists() else path
    return path


def plan_files(root: str | os.PathLike, names: Sequence[str], widget: str = "workflows") -> LoopPlan:
    """The plan of the workflow files `names` (inside `root`), stitched in order."""
    return plan_pipeline([load_json(workflow_path(root, name, widget)) for name in names], names)


def file_steps(root: str | os.PathLike, names: Sequence[str], widget: str = "workflows") -> Steps:
    """The steps of a pipeline of the files `names` inside `root`: conditional when it gives `next`, whose names
    are found in `root` too."""
    return pipeline_steps(names, plan_files(root, names, widget), lambda following: plan_files(root, following, "next"))
