"""Port roles in a body, the one port model, and what planning makes of them (pure: no ComfyUI).

The rule: within one body the ports of a uid form chains along links; the upstream-most are its entries, the
downstream-most its exit, those between pass the value on.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discomfort.errors import PortError, WorkflowError
from discomfort.executor.plan import (
    CARRY_IN,
    CARRY_OUT,
    CHECK,
    INITIAL,
    PARKED,
    PlanCache,
    plan_loop,
    plan_workflow,
    prepare_prompt,
)
from discomfort.ports import PortGraph, PortMode, Role, find_ports, interface
from discomfort.ports.model import LOOP_CLASSES, MAX_DEPTH
from discomfort.ports.stitch import stitch_api
from discomfort.workflow.graph import is_link


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def port(uid: str, value=None, tags: str = "") -> dict:
    return node("DiscomfortPort", unique_id=uid, tags=tags, **({"value": value} if value else {}))


def loop(body: str = "loop", **inputs) -> dict:
    return node("DiscomfortLoop", body=body, **{"iterations": 3, "uids": "", "accumulate": "", "stop_when": "",
                                                **inputs})  # fmt: skip


def roles(graph: dict) -> dict[str, Role | None]:
    return {port.node_id: port.role for port in find_ports(graph)}


# --- the rule -----------------------------------------------------------------------------------------------------


def test_a_preview_of_the_exit_leaves_it_the_exit():
    refine = {
        "1": node("EmptyImage"), "2": port("image", ["1", 0], "loop"), "3": node("ImageBlur", image=["2", 0]),
        "4": port("image", ["3", 0], "loop"), "5": node("PreviewImage", images=["4", 0]), "10": loop(),
    }  # fmt: skip
    found = {p.node_id: p for p in find_ports(refine)}
    assert found["4"].mode is PortMode.PASSTHRU and found["4"].role is Role.EXIT and found["4"].loop_id == "10"
    assert found["2"].role is Role.ENTRY
    plan = plan_loop(prepare_prompt(refine)["10"], "10")
    assert plan.entries == {"image": ("2",)} and plan.exits == {"image": "4"} and plan.carried == ("image",)
    # The exit becomes a carry-out that passes its value on: the preview still takes it, every iteration.
    assert plan.prompt["4"]["class_type"] == CARRY_OUT and plan.prompt["5"]["inputs"]["images"] == ["4", 0]
    assert "5" in plan.prompt


def test_ports_between_an_entry_and_its_exit_pass_the_value_on():
    graph = {
        "1": port("image"), "2": node("ImageBlur", image=["1", 0]), "3": port("image", ["2", 0]),
        "4": node("ImageInvert", image=["3", 0]), "5": port("image", ["4", 0]),
    }  # fmt: skip
    assert roles(graph) == {"1": Role.ENTRY, "3": Role.THROUGH, "5": Role.EXIT}
    plan = plan_workflow(graph)
    assert plan.prompt["3"]["class_type"] == "DiscomfortPort"  # a plain pass-through, as in a plain run
    assert plan.entries == {"image": ("1",)} and plan.exits == {"image": "5"}


def test_a_lone_passthru_is_its_uids_entry_and_exit_and_carries_nothing():
    graph = {"1": node("EmptyImage"), "2": port("image", ["1", 0]), "3": node("SaveImage", images=["2", 0])}
    assert roles(graph) == {"2": Role.ENTRY_EXIT}
    plan = plan_workflow(graph)
    assert plan.entries == {"image": ("2",)} and plan.exits == {"image": "2.exit"} and plan.carried == ()
    assert plan.prompt["2.exit"] == {"class_type": CARRY_OUT, "inputs": {"token": "", "value": ["2", 0]},
                                     "_meta": {"title": "image (entry and exit port)"}}  # fmt: skip
    assert interface(graph).gives["image"].node_id == "2"


def test_input_ports_are_never_exits_and_output_ports_never_entries():
    graph = {"1": port("a"), "2": node("ImageInvert", image=["1", 0]), "3": port("b", ["2", 0])}
    assert roles(graph) == {"1": Role.ENTRY, "3": Role.EXIT}
    assert plan_workflow(graph).carried == ()


def test_two_downstream_most_ports_of_a_uid_are_named_together():
    graph = {"1": port("image"), "2": node("ImageInvert", image=["1", 0]), "3": port("image", ["2", 0]),
             "4": port("image", ["2", 0])}  # fmt: skip
    with pytest.raises(PortError, match="ports 3, 4 are all downstream-most ports of uid 'image'"):
        interface(graph)


def test_a_chain_runs_through_a_loop_nested_in_the_body():
    # n enters the outer body at 2 and leaves at 7; between them the inner loop (its body 3 -> 4 -> 5) computes it.
    nested = {
        "1": node("Int", value=0), "2": port("n", ["1", 0], "outer"), "3": port("m", ["2", 0], "inner"),
        "4": node("Add", a=["3", 0], b=1), "5": port("m", ["4", 0], "inner"), "6": loop("inner", uids="m"),
        "7": port("n", ["6", 0], "outer"), "8": loop("outer", uids="n"),
    }  # fmt: skip
    found = {p.node_id: (p.role, p.loop_id) for p in find_ports(nested)}
    assert found == {"2": (Role.ENTRY, "8"), "3": (Role.ENTRY, "6"), "5": (Role.EXIT, "6"), "7": (Role.EXIT, "8")}
    body = PortGraph(nested).loop_body("8")
    assert body.inner == {"6"} and body.depth == 2 and body.feeders == {"1"}


def test_untagged_ports_inside_a_loop_belong_to_no_body_and_feeders_keep_workflow_ports():
    graph = {
        "1": port("x"), "2": port("image", ["1", 0], "loop"), "3": node("ImageBlur", image=["2", 0]),
        "4": port("debug", ["3", 0]), "5": port("image", ["3", 0], "loop"), "10": loop(),
    }  # fmt: skip
    found = {p.node_id: (p.role, p.loop_id) for p in find_ports(graph)}
    # 1 feeds the loop (a workflow-level entry); 4 runs inside the loop's core: it is no port of the workflow.
    assert found["1"] == (Role.ENTRY, None) and found["4"] == (None, None)
    assert [p.node_id for p in PortGraph(graph).workflow_ports()] == ["1"]
    plan = plan_workflow(graph)
    assert plan.entries == {"x": ("1",)}
    # The workflow's carry-in feeds only the loop, so it is parked in the loop's body, and its tokens reach it there.
    assert plan.prompt["10"][PARKED]["body"]["1"]["class_type"] == CARRY_IN


# --- stitching ----------------------------------------------------------------------------------------------------


def op_file(op: str) -> dict:
    return {"1": port("image"), "2": node(op, image=["1", 0]), "3": port("image", ["2", 0])}


def test_stitched_files_chain_one_uid_from_the_first_entry_to_the_last_exit():
    stitched = stitch_api([op_file("ImageBlur"), op_file("ImageInvert")], ["a.json", "b.json"])
    assert roles(stitched) == {"1.1": Role.ENTRY, "1.3": Role.THROUGH, "2.1": Role.THROUGH, "2.3": Role.EXIT}
    plan = plan_workflow(stitched)
    assert plan.entries == {"image": ("1.1",)} and plan.exits == {"image": "2.3"}
    assert plan.prompt["2.1"]["inputs"]["value"] == ["1.3", 0]  # b works on what a gave


def test_a_later_passthru_entry_takes_the_earlier_files_value_instead_of_its_own_feeder():
    later = {"1": node("LoadImage", image="x.png"), "2": port("image", ["1", 0]),
             "3": node("ImageInvert", image=["2", 0]), "4": port("image", ["3", 0])}  # fmt: skip
    stitched = stitch_api([op_file("ImageBlur"), later])
    assert stitched["2.2"]["inputs"]["value"] == ["1.3", 0]
    assert roles(stitched)["2.2"] is Role.THROUGH


def test_a_file_that_does_not_touch_the_uid_leaves_the_chain_whole():
    middle = {"1": node("EmptyImage"), "2": port("mark", ["1", 0]), "3": node("SaveImage", images=["2", 0])}
    stitched = stitch_api([op_file("ImageBlur"), middle, op_file("ImageInvert")])
    assert stitched["3.1"]["inputs"]["value"] == ["1.3", 0]
    assert {uid: p.node_id for uid, p in interface(stitched).gives.items()} == {"image": "3.3", "mark": "2.2"}


# --- the rule, on random chains -----------------------------------------------------------------------------------

OPS = ("A", "B", "C")


@st.composite
def chains(draw):
    """Files, each a run of ops on uid `v` with ports of `v` between them, a preview hanging off some of them.

    The first file starts at an INPUT port or at a PASSTHRU fed by a constant; every file ends at a port (a later
    file's first port is an INPUT that stitching links). Returns the files and every op in order."""
    files, ops = [], []
    for position in range(draw(st.integers(1, 4))):
        prompt: dict = {}
        if position == 0 and draw(st.booleans()):
            prompt["k"] = node("Const")
            prompt["p0"] = port("v", ["k", 0])
        else:
            prompt["p0"] = port("v")
        previous = "p0"
        for step in range(draw(st.integers(0, 3))):
            op = draw(st.sampled_from(OPS))
            prompt[f"o{step}"] = node(op, x=[previous, 0])
            ops.append(op)
            previous = f"o{step}"
            if draw(st.booleans()):
                prompt[f"p{step + 1}"] = port("v", [previous, 0])
                previous = f"p{step + 1}"
            if draw(st.booleans()):
                prompt[f"s{step}"] = node("Preview", images=[previous, 0])  # a side branch, not a port
        if previous == "p0" or prompt[previous]["class_type"] != "DiscomfortPort":
            prompt["last"] = port("v", [previous, 0])
        files.append(prompt)
    return files, ops


def evaluate(prompt: dict, node_id: str) -> list[str]:
    """The ops applied to the carried value on the way to `node_id` (ports pass values on; carry-ins are the start)."""
    found = prompt[node_id]
    if found["class_type"] in (CARRY_IN, "Const"):
        return []
    link = next(value for name, value in found["inputs"].items() if is_link(value) and name != INITIAL)
    below = evaluate(prompt, link[0])
    return below if found["class_type"] in ("DiscomfortPort", CARRY_OUT) else [*below, found["class_type"]]


@settings(max_examples=150, deadline=None)
@given(chains())
def test_random_chains_have_one_entry_one_exit_and_compose_every_op(case):
    files, ops = case
    stitched = stitch_api(files) if len(files) > 1 else files[0]
    found = [p for p in find_ports(stitched) if p.uid == "v"]
    entries = [p for p in found if p.role is not None and p.role.is_entry]
    exits = [p for p in found if p.role is not None and p.role.is_exit]
    assert len(entries) == 1 and entries[0].node_id.endswith("p0") and entries[0].node_id.split(".")[0] in ("1", "p0")
    assert len(exits) == 1
    assert all(p.role is Role.THROUGH for p in found if p not in entries and p not in exits)
    plan = plan_workflow(stitched)
    assert evaluate(plan.prompt, plan.exits["v"]) == ops
    assert plan.carried == ("v",)  # the exit lies downstream of the entry: iteration i+1 starts from its value


# --- the model ----------------------------------------------------------------------------------------------------


def test_loop_classes_know_where_each_loop_keeps_its_body_name():
    from discomfort.executor.loop_node import DiscomfortLoop
    from discomfort.nodes.folder import DiscomfortFolderLoop

    for cls in (DiscomfortLoop, DiscomfortFolderLoop):
        widgets = [name for section in ("required", "optional") for name in cls.INPUT_TYPES().get(section, {})
                   if not name.startswith("value_")]  # fmt: skip
        assert widgets.index("body") == LOOP_CLASSES[cls.__name__]


def test_ui_workflows_find_loop_bodies_by_the_body_widget():
    def ui(node_id, kind, widgets, inputs=(), outputs=()):
        return {"id": node_id, "type": kind, "mode": 0, "widgets_values": widgets,
                "inputs": [{"name": n, "type": "*", "link": link} for n, link in inputs],
                "outputs": [{"name": "out", "type": "*", "links": list(outputs)}]}  # fmt: skip

    workflow = {"nodes": [ui(1, "DiscomfortPort", ["image", "mine"], outputs=[1]),
                          ui(2, "ImageInvert", [], [("image", 1)], [2]),
                          ui(3, "DiscomfortPort", ["image", "mine"], [("value", 2)]),
                          ui(4, "DiscomfortFolderLoop", ["folder", "images", "", "mine", 0, "stop"])],
                "links": [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "*"]]}  # fmt: skip
    found = {p.node_id: (p.role, p.loop_id) for p in find_ports(workflow)}
    assert found == {"1": (Role.ENTRY, "4"), "3": (Role.EXIT, "4")}


def nest(depth: int, loop_id: Callable[[int], str] = "l{}".format) -> dict:
    """Loops l1 around l2 around ... l<depth>, each carrying x through the next one in."""
    prompt = {"c": node("Int", value=0)}
    source = ["c", 0]
    for level in range(1, depth + 1):
        prompt[f"in{level}"] = port("x", source, f"b{level}")
        source = [f"in{level}", 0]
    prompt["add"] = node("Add", a=source, b=1)
    inner = ["add", 0]
    for level in range(depth, 0, -1):
        prompt[f"out{level}"] = port("x", inner, f"b{level}")
        prompt[loop_id(level)] = loop(f"b{level}", uids="x")
        inner = [loop_id(level), 0]
    return prompt


def test_nests_up_to_the_limit_are_planned_and_deeper_ones_refused_at_the_limit():
    assert PortGraph(nest(MAX_DEPTH)).loop_body("l1").depth == MAX_DEPTH
    prepared = prepare_prompt(nest(30))
    assert prepared["l1"]["inputs"]["problem"].startswith(f"loops are nested more than {MAX_DEPTH} deep (l1 > l2")
    # Each loop is refused on its own depth; the innermost eight, which could run alone, go with the loops around.
    assert all(prepared[f"l{level}"]["class_type"] == CHECK for level in range(1, 23))
    assert not {f"l{level}" for level in range(23, 31)} & set(prepared)


def test_a_nest_too_deep_is_refused_whichever_loop_comes_first():
    # Loops made inner first: the innermost's id comes first, its body is found alone, then within the others.
    def inner_first(level: int) -> str:
        return f"l{100 - level}"

    assert PortGraph(nest(MAX_DEPTH, inner_first)).loop_body(inner_first(1)).depth == MAX_DEPTH
    prepared = prepare_prompt(nest(MAX_DEPTH + 1, inner_first))
    assert prepared["l99"]["class_type"] == CHECK
    assert prepared["l99"]["inputs"]["problem"].startswith(f"loops are nested more than {MAX_DEPTH} deep (l99 > l98")


def test_a_loop_linked_to_its_own_body_is_refused():
    prompt = {"1": node("EmptyImage"), "2": port("a", ["1", 0], "x"), "3": loop("x", value_1=["2", 0])}
    with pytest.raises(WorkflowError, match="loop 3 is linked to its own body 'x': it takes node 2's output"):
        PortGraph(prompt).loop_body("3")


def test_cached_plans_get_the_enclosing_loops_current_tokens():
    prepared = prepare_prompt(nest(2))
    outer = plan_loop(prepared["l1"], "l1")
    cache = PlanCache()
    for version in range(3):
        run = outer.instantiate(outer.prompt, {"in1": f"r/x/{version}", "out1": f"r/x/{version}"})
        inner = cache.plan_loop(run["l2"], "l2")
        assert inner.enclosing_tokens() == {"in1": f"r/x/{version}"}
    assert cache.compiled == 1


def side_by_side(count: int) -> dict:
    """`count` independent refinement loops in one prompt."""
    prompt = {}
    for k in range(count):
        prompt.update({f"{k}.src": node("EmptyImage"), f"{k}.in": port("image", [f"{k}.src", 0], f"b{k}"),
                       f"{k}.op": node("ImageBlur", image=[f"{k}.in", 0]),
                       f"{k}.out": port("image", [f"{k}.op", 0], f"b{k}"), f"{k}.loop": loop(f"b{k}")})  # fmt: skip
    return prompt


def python_calls(function, *args) -> int:
    """How many Python-level calls `function(*args)` makes: a count of work that does not depend on the machine."""
    import sys

    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event == "call"

    sys.setprofile(profile)
    try:
        function(*args)
    finally:
        sys.setprofile(None)
    return count


def test_preparation_grows_linearly_with_the_number_of_loops_and_their_depth():
    # The work is counted, not timed. Quadratic work in the loop count would be 16 times the small prompt's, and
    # the nest of 30 once took longer than anyone waited (each level walked its inner levels again).
    small, large = python_calls(prepare_prompt, side_by_side(100)), python_calls(prepare_prompt, side_by_side(400))
    assert large <= 1.25 * 4 * small, (small, large)
    shallow, deep = python_calls(prepare_prompt, nest(4)), python_calls(prepare_prompt, nest(8))
    assert deep <= 1.25 * (len(nest(8)) / len(nest(4))) * shallow, (shallow, deep)
    assert python_calls(prepare_prompt, nest(30)) <= 4 * deep  # refused at the limit, not walked to the bottom
