"""Loop plans and prompt preparation (pure: no ComfyUI)."""

from __future__ import annotations

import pytest

from discomfort.errors import WorkflowError
from discomfort.executor.plan import CARRY_IN, CARRY_OUT, CHECK, PARKED, TOKEN, fingerprint, plan_loop, prepare_prompt
from discomfort.ports import PortGraph


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def port(uid: str, value=None, tags: str = "loop") -> dict:
    return node("DiscomfortPort", unique_id=uid, tags=tags, **({"value": value} if value else {}))


def loop(body: str = "loop", **inputs) -> dict:
    defaults = {"iterations": 3, "uids": "", "accumulate": "", "stop_when": ""}
    return node("DiscomfortLoop", body=body, **{**defaults, **inputs})


def refine() -> dict:
    """Loader -> [image in] -> Blur -> [image out]; the blur also saved; the loop's result saved outside."""
    return {
        "1": node("LoadImage", image="a.png"),
        "2": port("image", ["1", 0]),
        "3": node("ImageBlur", image=["2", 0], blur_radius=1),
        "4": port("image", ["3", 0]),
        "5": node("SaveImage", images=["3", 0]),
        "6": node("CheckpointLoaderSimple", ckpt_name="m.safetensors"),
        "10": loop(),
        "11": node("SaveImage", images=["10", 0]),
    }


def test_body_is_downstream_of_entries_plus_exits_plus_ancestors():
    assert PortGraph(refine()).loop_body("10").nodes == {"1", "2", "3", "4", "5"}


def test_prepare_moves_the_body_into_the_loop_node():
    prepared = prepare_prompt(refine())
    assert set(prepared) == {"6", "10", "11"}
    assert set(prepared["10"][PARKED]["body"]) == {"1", "2", "3", "4", "5"}
    assert PARKED not in prepared["11"]


def test_prepare_keeps_what_the_rest_of_the_graph_also_needs():
    prompt = refine()
    prompt["12"] = node("SaveImage", images=["1", 0])  # the loader's image is also saved outside the loop
    prepared = prepare_prompt(prompt)
    assert set(prepared) == {"1", "6", "10", "11", "12"}
    assert "1" in prepared["10"][PARKED]["body"]


def test_prepare_leaves_prompts_without_loops_alone_and_does_not_mutate():
    plain = {"1": node("EmptyImage"), "2": node("SaveImage", images=["1", 0])}
    assert prepare_prompt(plain) == plain
    prompt = refine()
    before = repr(prompt)
    prepare_prompt(prompt)
    assert repr(prompt) == before


def test_plan_rewrites_entries_and_exits_with_feeders():
    plan = plan_loop(prepare_prompt(refine())["10"], "10")
    assert plan.entries == {"image": ("2",)} and plan.exits == {"image": "4"} and plan.carried == ("image",)
    assert plan.prompt["2"]["class_type"] == CARRY_IN and plan.prompt["2"]["inputs"]["initial"] == ["1", 0]
    assert plan.prompt["4"] == {"class_type": CARRY_OUT, "inputs": {TOKEN: "", "value": ["3", 0]},
                                "_meta": {"title": "image (exit port)"}}  # fmt: skip
    assert plan.uid_has_feeder("image")
    assert plan.prompt["3"] == refine()["3"]


def test_instantiate_copies_and_writes_tokens_without_touching_the_template():
    plan = plan_loop(prepare_prompt(refine())["10"], "10")
    first = plan.instantiate(plan.prompt, {"2": "run/image/0", "4": "run/image/0"})
    second = plan.instantiate(plan.prompt, {"2": "run/image/1", "4": "run/image/1"})
    assert first["2"]["inputs"][TOKEN] == "run/image/0" and second["2"]["inputs"][TOKEN] == "run/image/1"
    assert plan.prompt["2"]["inputs"][TOKEN] == ""
    first["3"]["is_changed"] = [1.0]  # what ComfyUI's IsChangedCache does
    assert "is_changed" not in plan.prompt["3"] and "is_changed" not in second["3"]


def test_without_feeders_cuts_only_carry_ins_that_take_the_loops_value():
    plan = plan_loop(prepare_prompt(refine())["10"], "10")
    assert plan.without_feeders(plan.prompt, {"image"})["2"]["inputs"]["initial"] == ["1", 0]  # iteration 0
    later = plan.without_feeders(plan.prompt, set())
    assert "initial" not in later["2"]["inputs"] and "1" in later  # the feeder stays, for the private cache
    assert plan.prompt["2"]["inputs"]["initial"] == ["1", 0]  # the template is untouched
    outer = plan_loop(prepare_prompt(nested())["8"], "8")
    assert outer.without_feeders(outer.prompt, set())["6"] == outer.prompt["6"]  # a nested loop's carry-ins stay


def nested() -> dict:
    return {
        "1": node("Int", value=0),
        "2": port("n", ["1", 0], tags="outer"),
        "3": port("m", ["2", 0], tags="inner"),
        "4": node("Add", a=["3", 0], b=1),
        "5": port("m", ["4", 0], tags="inner"),
        "6": loop("inner", uids="m"),
        "7": port("n", ["6", 0], tags="outer"),
        "8": loop("outer", uids="n"),
    }


def test_nested_loop_body_is_parked_inside_the_outer_body_in_turn():
    prepared = prepare_prompt(nested())
    assert set(prepared) == {"8"}
    outer_body = prepared["8"][PARKED]["body"]
    assert set(outer_body) == {"1", "2", "3", "4", "5", "6", "7"}
    plan = plan_loop(prepared["8"], "8")
    # In the outer loop's own run, the inner loop's body is parked in the inner loop node, carry-in 2 with it.
    assert set(plan.prompt) == {"6", "7"}
    assert set(plan.prompt["6"][PARKED]["body"]) == {"1", "2", "3", "4", "5"}
    assert plan.prompt["6"][PARKED]["body"]["2"]["class_type"] == CARRY_IN
    # Tokens reach carry nodes wherever they are parked.
    run = plan.instantiate(plan.prompt, {"2": "r/n/4", "7": "r/n/4"})
    assert run["6"][PARKED]["body"]["2"]["inputs"][TOKEN] == "r/n/4"
    assert plan.prompt["6"][PARKED]["body"]["2"]["inputs"][TOKEN] == ""


@pytest.mark.parametrize(
    "change, at_fault, message",
    [
        (lambda p: p["10"]["inputs"].update(body=" "), "10", "loop 10: the body name is empty"),
        (lambda p: p["10"]["inputs"].update(body="other"), "10", "no DiscomfortPort is tagged 'other'"),
        (lambda p: p["4"]["inputs"].update(unique_id=""), "4 10", "DiscomfortPort node 4 has an empty unique_id"),
        (lambda p: p.update({"7": port("image", ["3", 0])}), "4 7 10", "ports 4, 7 are all downstream-most ports"),
        (lambda p: p["4"]["inputs"].update(unique_id="iteration"), "4 10", "port 4 gives the reserved uid 'iteration'"),
        (lambda p: p["3"]["inputs"].update(blur_radius=["10", 8]), "10", "loop 10 is linked to its own body 'loop'"),
        (lambda p: p["10"]["inputs"].update(value_1=["3", 0]), "10", "its own body 'loop': it takes node 3's output"),
        (lambda p: p["10"]["inputs"].update(stop_when="done"), "10", "stop_when names 'done', but no exit port"),
        (lambda p: p["10"]["inputs"].update(uids="image, nope"), "10", "uids names 'nope', but no entry or exit"),
    ],
)
def test_bad_loops_fail_validation_on_the_node_at_fault(change, at_fault, message):
    prompt = refine()
    change(prompt)
    prepared = prepare_prompt(prompt)
    checks = {node_id: node["inputs"]["problem"] for node_id, node in prepared.items() if node["class_type"] == CHECK}
    assert sorted(checks) == sorted(at_fault.split()) and all(message in problem for problem in checks.values())
    if "tagged" not in message and "name is empty" not in message:  # else nothing says what the body was
        assert not {"3", "5"} & set(prepared)  # what the loop would have run does not run on its own


def test_loops_inside_each_others_bodies_are_refused():
    prompt = {
        "20": node("EmptyImage"),
        "1": port("a", ["20", 0], tags="x"), "2": loop("y", value_1=["1", 0]), "3": port("a", ["1", 0], tags="x"),
        "5": port("b", ["20", 0], tags="y"), "4": loop("x", value_1=["5", 0]), "6": port("b", ["5", 0], tags="y"),
    }  # fmt: skip
    prepared = prepare_prompt(prompt)
    assert prepared["4"]["inputs"]["problem"] == "loops 2 and 4 are each inside the other's body"
    assert prepared["2"]["inputs"]["problem"] == "loops 4 and 2 are each inside the other's body"


def test_unprepared_loop_node_is_refused():
    with pytest.raises(WorkflowError, match="was not prepared"):
        plan_loop(loop(), "10")


def test_fingerprint_follows_widget_values():
    a, b = refine(), refine()
    assert fingerprint(a) == fingerprint(b)
    b["3"]["inputs"]["blur_radius"] = 2
    assert fingerprint(a) != fingerprint(b)
