"""Discomfort loops beside ComfyUI's own loops (Start Loop / End Loop, 0.36+).

What can be checked without them runs everywhere: how a prompt holding them is prepared (pure). What needs them
runs only where the ComfyUI under test has them, and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import pytest
from graphs import loop, node, port

from discomfort.executor.plan import FEED_INPUT, PARKED, native_loop_nodes, plan_loop, prepare_prompt


def native_around() -> dict:
    """A native loop (3 iterations) whose body holds a Discomfort loop: x enters it from the native loop's index,
    is raised by one twice, and the result goes out through End Loop."""
    return {
        "s": node("StartLoop", **{"mode": "simple", "mode.num_iterations": 3}),
        "1": port("x", ["s", 0]),
        "2": node("DiscomfortTestAdd", a=["1", 0], b=1),
        "3": port("x", ["2", 0]),
        "10": loop(iterations=2, uids="x"),
        "e": node("EndLoop", output_value=["10", 0], accumulate=True),
        "out": node("DiscomfortTestCapture", value=["e", 0], label="native"),
    }


def native_inside() -> dict:
    """A Discomfort loop (2 iterations) whose body holds a native loop adding 1 three times."""
    return {
        "0": node("DiscomfortTestAdd", a=0, b=0),
        "1": port("x", ["0", 0]),
        "s": node("StartLoop", initial_iteration_value=["1", 0], **{"mode": "simple", "mode.num_iterations": 3}),
        "2": node("DiscomfortTestAdd", a=["s", 4], b=1),
        "e": node("EndLoop", next_iteration_value=["2", 0], output_value=["2", 0]),
        "3": port("x", ["e", 0]),
        "10": loop(iterations=2, uids="x"),
        "out": node("DiscomfortTestCapture", value=["10", 0], label="inside"),
    }


def test_a_native_loop_around_a_discomfort_loop_stays_out_of_its_body():
    prompt = native_around()
    assert native_loop_nodes(prompt) == {"s", "e"}
    prepared = prepare_prompt(prompt)
    body = prepared["10"][PARKED]["body"]
    assert "s" not in body and "e" not in body and {"s", "e", "10", "out"} <= set(prepared)
    # What the native loop gives the body enters it through a port of its own, fed by the loop node's input.
    assert prepared["10"]["inputs"][FEED_INPUT + "~s.0"] == ["s", 0]
    assert body["1"]["inputs"]["value"] == ["s.0.feed", 0]
    plan = plan_loop(prepared["10"], "10")
    assert set(plan.entries) == {"x", "~s.0"} and plan.carried == ("x",)
    assert "s.0.feed" not in plan.shown_ids()


def test_a_native_loop_inside_a_discomfort_body_goes_into_the_body_whole():
    prompt = native_inside()
    assert native_loop_nodes(prompt) == set()
    prepared = prepare_prompt(prompt)
    assert {"s", "2", "e"} <= set(prepared["10"][PARKED]["body"])
    assert set(prepared) == {"10", "out"}


def test_what_feeds_a_native_loop_around_a_discomfort_loop_stays_outside_too():
    prompt = native_around()
    prompt["c"] = node("DiscomfortTestAdd", a=5, b=0)
    prompt["s"]["inputs"]["initial_iteration_value"] = ["c", 0]
    prompt["2"]["inputs"]["b"] = ["c", 0]  # the body reads what feeds the Start, too
    assert "c" in native_loop_nodes(prompt)
    prepared = prepare_prompt(prompt)
    assert "c" not in prepared["10"][PARKED]["body"] and prepared["10"]["inputs"][FEED_INPUT + "~c.0"] == ["c", 0]


def needs_native_loops(comfy) -> None:
    import nodes

    if "StartLoop" not in nodes.NODE_CLASS_MAPPINGS:
        pytest.skip("this ComfyUI has no native loops (Start Loop / End Loop came with 0.36)")


@pytest.mark.comfy
def test_a_discomfort_loop_runs_in_every_iteration_of_a_native_loop(comfy, captured, loaded):
    needs_native_loops(comfy)
    prompt = native_around()
    prompt["e"]["inputs"]["terminations.termination0"] = ["10", 0]
    comfy.run(prompt)
    # iteration_index 0, 1, 2, each raised by one twice by the Discomfort loop; End Loop accumulates them.
    assert captured["native"] == [2, 3, 4]
    states = loaded.discomfort.executor.loop_node._copies._states
    assert len([key for key in states if key[1] == "10"]) == 1  # one private executor for every copy


@pytest.mark.comfy
def test_a_native_loop_runs_inside_a_discomfort_body(comfy, captured):
    needs_native_loops(comfy)
    comfy.run(native_inside())
    assert captured["inside"] == [6]  # 2 iterations of 3 additions


@pytest.mark.comfy
def test_an_exit_inside_a_native_loops_body_is_refused_saying_why(comfy):
    from discomfort.errors import ExecutionError, PromptValidationError

    needs_native_loops(comfy)
    prompt = native_inside()
    prompt["3"]["inputs"]["value"] = ["2", 0]  # the exit moved between Start Loop and End Loop
    with pytest.raises((ExecutionError, PromptValidationError), match="a native loop's body"):
        comfy.run(prompt)


@pytest.mark.comfy
def test_an_exit_fed_by_one_of_comfyuis_lists_gives_the_whole_list(comfy, captured):
    # As an accumulating End Loop does in a Discomfort body, RebatchImages gives a list (OUTPUT_IS_LIST).
    prompt = {
        "1": node("EmptyImage", width=8, height=8, batch_size=4, color=0),
        "2": port("images", ["1", 0]),
        "3": node("RebatchImages", images=["2", 0], batch_size=2),
        "4": port("parts", ["3", 0]),
        "10": loop(iterations=1, uids="parts"),
        "out": node("DiscomfortTestCapture", value=["10", 0], label="parts"),
    }
    comfy.run(prompt)
    (parts,) = captured["parts"]
    assert [part.shape[0] for part in parts] == [2, 2]
