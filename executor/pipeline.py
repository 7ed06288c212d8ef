"""Workflow files as one loop body: converted from the running ComfyUI's node definitions, stitched by uid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import WorkflowError
from .plan import LoopPlan, plan_workflow


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
