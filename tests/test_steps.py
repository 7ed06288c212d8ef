"""The steps of a pipeline (executor/steps.py), pure: which files run next, the path, each set planned once."""

from __future__ import annotations

import pytest

from discomfort.errors import SettingsError
from discomfort.executor.plan import plan_workflow
from discomfort.executor.steps import Steps, WorkflowStates, describe_path, parse_next, pipeline_steps


def port(uid: str, value: list | None = None) -> dict:
    inputs = {"unique_id": uid, "tags": ""}
    if value is not None:
        inputs["value"] = value
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def workflow(gives_next: bool) -> dict:
    """image in, inverted, out; with `gives_next`, a text node's value leaves through `next`."""
    prompt = {"1": port("image"), "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": port("image", ["2", 0])}  # fmt: skip
    if gives_next:
        prompt["4"] = {"class_type": "PrimitiveString", "inputs": {"value": "b.json"}}
        prompt["5"] = port("next", ["4", 0])
    return prompt


@pytest.mark.parametrize(("value", "names"), [
    ("b.json", ("b.json",)), ("  a.json \n\n b.json\n", ("a.json", "b.json")), ("", None), ("  \n", None),
    ("done", None), ("DONE\n", None), ("done\nb.json", ("done", "b.json")),
])  # fmt: skip
def test_next_names_files_one_per_line_and_empty_or_done_stop(value, names):
    assert parse_next(value) == names


@pytest.mark.parametrize("value", [None, 3, 0.5, True, ["b.json"]])
def test_next_that_is_not_text_is_refused_naming_what_it_gave(value):
    with pytest.raises(SettingsError, match=rf"next gave a {type(value).__name__} \("):
        parse_next(value)


def test_a_pipeline_is_conditional_when_its_first_step_gives_next():
    assert type(pipeline_steps(["a.json"], plan_workflow(workflow(False), "a.json"), None)) is Steps
    planned = []

    def plan_of(names):
        planned.append(names)
        return plan_workflow(workflow(names == ("b.json",)), " + ".join(names))

    steps = pipeline_steps(["a.json"], plan_workflow(workflow(True), "a.json"), plan_of)
    assert isinstance(steps, WorkflowStates) and steps.conditional
    b = steps.step(("b.json",))
    assert steps.step(("b.json",)) is b and steps.step(("a.json",)) is steps.first
    assert planned == [("b.json",)]  # planned once; the first step was planned by the front
    assert steps.following(steps.first, {"next": "b.json", "image": 1}) == ("b.json",)
    final = steps.step(("c.json",))
    assert steps.following(final, {"image": 1}) is None  # gives no next: a final state
    assert steps.carries(steps.first) == ("image",)
    assert [step.label for step in steps.planned()] == ["a.json", "b.json", "c.json"]


def test_a_path_is_described_with_repeats_folded():
    path = [("start.json",), ("refine.json",), ("refine.json",), ("a.json", "b.json"), ("refine.json",)]
    assert describe_path(path) == "start.json, refine.json (x2), a.json + b.json, refine.json"
    assert describe_path([]) == "" and describe_path(["a.json", "a.json"]) == "a.json (x2)"
