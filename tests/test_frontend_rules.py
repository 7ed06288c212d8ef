"""The frontend decides nothing: the modes, roles and bodies web/roles.js draws are the backend's, on every example
workflow and on graphs built to tell the rules apart. Each graph is opened in the real frontend (UI workflows as
files are, API prompts as a dropped API file is) and what the extension computes there is compared with what
Discomfort's planner computes for the same graph in Python.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphs import empty_image, loop, nested_three_deep, node, port

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parent.parent
UI_FILES = sorted((REPO / "example_workflows").glob("*.json")) + sorted((REPO / "tests" / "workflows").glob("*.json"))


def previewed_exit() -> dict:
    """The refinement loop with a PreviewImage on its exit: the exit is PASSTHRU and still the exit."""
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("ImageBlur", image=["2", 0], blur_radius=1, sigma=1.0),
        "4": port("image", ["3", 0]),
        "5": node("PreviewImage", images=["4", 0]),
        "6": loop(uids="image", iterations=2),
    }


def chain_of_three() -> dict:
    """One uid through three ports: the first is the entry, the last the exit, the middle one passes through."""
    return {
        "1": port("image", tags=""),
        "2": node("ImageInvert", image=["1", 0]),
        "3": port("image", ["2", 0], tags=""),
        "4": node("ImageBlur", image=["3", 0], blur_radius=1, sigma=1.0),
        "5": port("image", ["4", 0], tags=""),
    }


def two_exits() -> dict:
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("ImageInvert", image=["2", 0]),
        "4": port("image", ["3", 0]),
        "5": node("ImageBlur", image=["2", 0], blur_radius=1, sigma=1.0),
        "6": port("image", ["5", 0]),
        "7": loop(uids="image"),
    }


def iteration_index() -> dict:
    return {
        "1": port("iteration"),
        "2": node("DiscomfortTestAdd", a=["1", 0], b=1),
        "3": port("total", ["2", 0]),
        "4": loop(uids="total", iterations=3),
        "5": port("empty", tags="loop"),  # linked to nothing: not a port of the body
    }


def loop_in_its_own_body() -> dict:
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("ImageInvert", image=["2", 0]),
        "4": port("image", ["3", 0]),
        "5": loop(uids="image", value_1=["3", 0]),
    }


API_GRAPHS = {
    "previewed exit": previewed_exit(),
    "chain of three": chain_of_three(),
    "two exits": two_exits(),
    "iteration index": iteration_index(),
    "loop in its own body": loop_in_its_own_body(),
    "three nested loops": nested_three_deep()[0],
}


def backend_facts(prompt: dict) -> dict:
    """What Discomfort's Python planner says of an API prompt: each port's mode, each loop's body and, from the
    plans it compiles, each body's entries and exits."""
    from discomfort.errors import DiscomfortError
    from discomfort.executor.plan import LOOP_CLASSES, PARKED, plan_loop, plan_workflow, prepare_prompt
    from discomfort.ports import PortGraph, find_ports

    modes = {p.node_id: p.mode.value for p in find_ports(prompt)}
    model = PortGraph(prompt)
    loops: dict[str, dict] = {}
    for loop_id, body in model.bodies().items():
        loops[loop_id] = {"error": str(body)} if isinstance(body, DiscomfortError) else {"nodes": sorted(body.nodes)}

    def roles(plan) -> dict:
        return {"entries": {uid: sorted(ids) for uid, ids in plan.entries.items()},
                "exits": {uid: [node_id] for uid, node_id in plan.exits.items()}}  # fmt: skip

    def plan_parked(prepared: dict) -> None:
        for loop_id, entry in prepared.items():
            if entry.get("class_type") in LOOP_CLASSES and PARKED in entry and "error" not in loops[loop_id]:
                plan = plan_loop(entry, loop_id)
                loops[loop_id].update(roles(plan))
                plan_parked(plan.prompt)

    plan_parked(prepare_prompt(prompt))
    try:
        workflow = roles(plan_workflow(prompt))
    except DiscomfortError as error:
        workflow = {"error": str(error)}
    return {"modes": modes, "loops": loops, "workflow": workflow}


def assert_same(frontend: dict, backend: dict) -> None:
    assert {port_id: port["mode"] for port_id, port in frontend["ports"].items()} == backend["modes"]
    assert set(frontend["loops"]) == set(backend["loops"])
    for loop_id, facts in backend["loops"].items():
        drawn = frontend["loops"][loop_id]
        if "error" in facts:
            assert drawn["problems"], f"loop {loop_id}: the backend refuses it ({facts['error']}); the UI flags nothing"
            continue
        assert drawn["nodes"] == facts["nodes"], f"loop {loop_id}: body"
        assert not drawn["problems"], f"loop {loop_id}: the backend plans it; the UI flags {drawn['problems']}"
        assert drawn["entries"] == facts["entries"], f"loop {loop_id}: entries"
        assert drawn["exits"] == facts["exits"], f"loop {loop_id}: exits"
    # A loop the backend refuses keeps its graph, so its ports count as the file's own; the UI keeps showing them
    # as the loop's (the loop is flagged), which is what its user means.
    refused = any("error" in facts for facts in backend["loops"].values())
    if "error" not in backend["workflow"] and not refused:
        assert frontend["workflow"] == backend["workflow"]


def test_the_rules_are_the_backends_on_every_example_workflow(ui, comfy):
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    defs = LiveNodeDefs()
    assert len(UI_FILES) >= 7
    for path in UI_FILES:
        workflow = json.loads(path.read_text())
        ui.load(workflow)
        try:
            assert_same(ui.analysis(), backend_facts(ui_to_api(workflow, defs)))
        except AssertionError as error:
            raise AssertionError(f"{path.name}: {error}") from None


@pytest.mark.parametrize("prompt", list(API_GRAPHS.values()), ids=list(API_GRAPHS))
def test_the_rules_are_the_backends_on_graphs_that_tell_them_apart(ui, comfy, prompt):
    ui.js("app.loadApiJson(arg, 'rules.json')", prompt)
    ui.settle()
    assert_same(ui.analysis(), backend_facts(prompt))
