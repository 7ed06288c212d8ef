"""DiscomfortLoop on a real ComfyUI booted in-process: results, caching, nesting, errors, cost per iteration."""

from __future__ import annotations

import pytest
import torch
from conftest import read_log
from graphs import empty_image, loop, loop_output, nested, nested_three_deep, node, port, save

pytestmark = pytest.mark.comfy


def capture(value: list, label: str) -> dict:
    return node("DiscomfortTestCapture", value=value, label=label)


def invert_loop(iterations: int, **loop_inputs) -> dict:
    """EmptyImage -> [image PASSTHRU] -> ImageInvert -> [image OUTPUT]; the loop's final image captured."""
    return {
        "1": empty_image(),
        "2": port("image", ["1", 0]),
        "3": node("ImageInvert", image=["2", 0]),
        "4": port("image", ["3", 0]),
        "10": loop(iterations=iterations, uids="image", **loop_inputs),
        "11": capture(["10", 0], "final"),
        "12": capture(loop_output("10", "accumulated_1"), "all"),
        "13": capture(loop_output("10", "iterations"), "count"),
    }


def direct(comfy, captured, prompt: dict, label: str):
    comfy.run(prompt)
    return captured.pop(label)[-1]


def original_image(comfy, captured) -> torch.Tensor:
    return direct(comfy, captured, {"1": empty_image(), "2": capture(["1", 0], "original")}, "original")


def unrolled(steps: int, make_step, start: dict, label: str) -> dict:
    """The same body applied `steps` times in one prompt, with no loop: what the loop must equal."""
    prompt = dict(start)
    previous = [next(iter(start)), 0]
    for i in range(steps):
        prompt[f"step{i}"] = make_step(previous)
        previous = [f"step{i}", 0]
    prompt["out"] = capture(previous, label)
    return prompt


def test_ten_inverts_give_back_the_original(comfy, captured):
    comfy.run(invert_loop(10, accumulate="image"))
    (final,) = captured["final"]
    expected = direct(comfy, captured, unrolled(10, lambda x: node("ImageInvert", image=x), {"1": empty_image()},
                                                "unrolled"), "unrolled")  # fmt: skip
    # The loop adds no arithmetic: it equals ImageInvert applied ten times bitwise, and that is the original up to
    # float32 rounding of 1 - (1 - x).
    assert torch.equal(final, expected)
    assert torch.allclose(final, original_image(comfy, captured), atol=1e-6)
    (everything,) = captured["all"]
    assert everything.shape == (10, 8, 8, 3)
    assert torch.equal(everything[9], final[0])
    assert torch.allclose(everything[0], 1.0 - final[0], atol=1e-6)
    assert captured["count"] == [10]


def test_ten_blurs_equal_blur_applied_ten_times_directly(comfy, captured):
    gradient = node("ImageCompositeMasked", destination=["1", 0], source=["9", 0], x=8, y=8, resize_source=False)
    looped = {
        "1": empty_image(0x000000, 32), "9": empty_image(0xFFFFFF, 16), "8": gradient,
        "2": port("image", ["8", 0]), "3": node("ImageBlur", image=["2", 0], blur_radius=2, sigma=1.0),
        "4": port("image", ["3", 0]), "10": loop(iterations=10, uids="image"), "11": capture(["10", 0], "looped"),
    }  # fmt: skip
    comfy.run(looped)
    start = {"8": gradient, "1": empty_image(0x000000, 32), "9": empty_image(0xFFFFFF, 16)}
    blur = lambda image: node("ImageBlur", image=image, blur_radius=2, sigma=1.0)  # noqa: E731
    expected = direct(comfy, captured, unrolled(10, blur, start, "unrolled"), "unrolled")
    # Same kernels on the same tensors in the same process: the loop adds no arithmetic, so equality is bitwise.
    assert torch.equal(captured["looped"][0], expected)
    assert not torch.equal(expected, direct(comfy, captured, unrolled(9, blur, start, "nine"), "nine"))


def test_counter_stops_at_the_right_iteration(comfy, captured):
    prompt = {
        "1": port("count"),
        "2": node("DiscomfortTestAdd", a=["1", 0], b=3),
        "3": port("count", ["2", 0]),
        "4": node("DiscomfortTestAtLeast", value=["2", 0], threshold=10),
        "5": port("done", ["4", 0]),
        "6": node("DiscomfortTestAdd", a=1, b=0),
        "10": loop(iterations=100, uids="count", accumulate="count", stop_when="done", value_1=["6", 0]),
        "11": capture(["10", 0], "final"),
        "12": capture(loop_output("10", "accumulated_1"), "all"),
        "13": capture(loop_output("10", "iterations"), "iterations"),
    }
    comfy.run(prompt)
    # 1 -> 4 -> 7 -> 10: at least 10 after the third iteration.
    assert captured["final"] == [10]
    assert captured["all"] == [[4, 7, 10]]
    assert captured["iterations"] == [3]


def test_zero_iterations_return_the_initial_values(comfy, captured):
    comfy.run(invert_loop(0))
    assert torch.equal(captured["final"][0], original_image(comfy, captured))
    assert captured["all"] == [None]
    assert captured["count"] == [0]


def test_initial_value_from_the_loop_input_wins_over_the_feeder(comfy, captured):
    prompt = invert_loop(1)
    prompt["20"] = empty_image(0xFFFFFF)
    prompt["10"]["inputs"]["value_1"] = ["20", 0]
    comfy.run(prompt)
    assert float(captured["final"][0].max()) == 0.0  # white inverted once


def test_iteration_index_reaches_the_body(comfy, captured):
    prompt = {
        "1": port("iteration"),
        "2": port("seen", ["1", 0]),
        "10": loop(iterations=5, accumulate="seen"),
        "11": capture(loop_output("10", "accumulated_1"), "seen"),
    }
    comfy.run(prompt)
    assert captured["seen"] == [[0, 1, 2, 3, 4]]


def test_a_loader_feeding_the_body_runs_once_and_a_save_in_the_body_every_iteration(comfy, log_file, request):
    prefix = request.node.name
    prompt = {
        "1": node("DiscomfortTestLoader", level=0.25, log=str(log_file)),
        "2": port("image", ["1", 0]),
        "3": node("ImageInvert", image=["2", 0]),
        "4": port("image", ["3", 0]),
        "5": save(["3", 0], prefix),
        "10": loop(iterations=20, uids="image"),
    }
    comfy.run(prompt)
    assert read_log(log_file) == ["load"]
    assert len(list(comfy.output_directory.glob(f"{prefix}_*.png"))) == 20
    comfy.run(prompt)  # queued again: the private executor still holds the loader's output
    assert read_log(log_file) == ["load"]
    assert len(list(comfy.output_directory.glob(f"{prefix}_*.png"))) == 40


def test_nested_loops_run_the_inner_body_outer_times_inner(comfy, captured, log_file, request):
    log = str(log_file)
    prefix = request.node.name
    prompt = {
        # outer body: count -> inner loop (4 iterations of +1, logged) -> +0 -> count
        "1": node("DiscomfortTestAdd", a=0, b=0),
        "2": port("total", ["1", 0], tags="outer"),
        "3": port("n", ["2", 0], tags="inner"),
        "4": node("DiscomfortTestAdd", a=["3", 0], b=1),
        "5": node("DiscomfortTestCount", value=["4", 0], log=log, label="inner body"),
        "6": port("n", ["5", 0], tags="inner"),
        "7": loop(body="inner", iterations=4, uids="n"),
        "8": node("DiscomfortTestCount", value=["7", 0], log=log, label="outer body"),
        "9": port("total", ["8", 0], tags="outer"),
        "10": loop(body="outer", iterations=3, uids="total"),
        "11": capture(["10", 0], "total"),
        # an output node inside the inner body: an image whose color is the running count
        "12": node("EmptyImage", width=4, height=4, batch_size=1, color=["4", 0]),
        "13": save(["12", 0], prefix),
    }
    comfy.run(prompt)
    lines = read_log(log_file)
    assert len(list(comfy.output_directory.glob(f"{prefix}_*.png"))) == 12
    assert lines.count("inner body") == 12
    assert lines.count("outer body") == 3
    assert captured["total"] == [12]


def test_three_levels_of_nesting(comfy, captured):
    prompt, result = nested_three_deep()
    comfy.run({**prompt, "cap": capture(result, "x")})
    assert captured["x"] == [2 * 3 * 2]


def test_independent_loops_side_by_side_and_chained(comfy, captured):
    prompt = {
        "1": node("DiscomfortTestAdd", a=0, b=0),
        "2": port("n", ["1", 0], tags="first"),
        "3": node("DiscomfortTestAdd", a=["2", 0], b=1),
        "4": port("n", ["3", 0], tags="first"),
        "5": loop(body="first", iterations=3, uids="n"),
        # the second loop starts from the first one's result and adds 10 each time
        "6": port("n", tags="second"),
        "7": node("DiscomfortTestAdd", a=["6", 0], b=10),
        "8": port("n", ["7", 0], tags="second"),
        "9": loop(body="second", iterations=2, uids="n", value_1=["5", 0]),
        # a third one beside them, with the same uid and its own state
        "20": port("n", ["1", 0], tags="third"),
        "21": node("DiscomfortTestAdd", a=["20", 0], b=100),
        "22": port("n", ["21", 0], tags="third"),
        "23": loop(body="third", iterations=1, uids="n"),
        "30": capture(["5", 0], "first"),
        "31": capture(["9", 0], "second"),
        "32": capture(["23", 0], "third"),
    }
    comfy.run(prompt)
    assert (captured["first"], captured["second"], captured["third"]) == ([3], [23], [100])


def test_error_names_iteration_node_and_message_and_keeps_finished_iterations(comfy, loaded):
    from discomfort.errors import ExecutionError

    prompt = {
        "1": port("iteration"),
        "2": port("image", ["9", 0]),
        "3": node("DiscomfortTestFailAt", value=["2", 0], index=["1", 0], fail_at=4),
        "4": node("ImageInvert", image=["3", 0]),
        "5": port("image", ["4", 0]),
        "9": empty_image(),
        "10": loop(iterations=10, uids="image"),
    }
    with pytest.raises(ExecutionError) as caught:
        comfy.run(prompt)
    message = str(caught.value)
    # The error names the body node at fault, and says which loop and iteration it failed in.
    assert caught.value.node_id == "3" and caught.value.class_type == "DiscomfortTestFailAt"
    assert "loop 10, iteration 5/10: node 3 (DiscomfortTestFailAt) failed: ValueError: planted failure at index 4" in (
        message
    )
    # The engine keeps the four finished iterations for its callers (the Python API reads them from here).
    engine, plan = loaded.discomfort.executor.engine, loaded.discomfort.executor.plan
    body = plan.plan_loop(plan.prepare_prompt(prompt)["10"], "10")
    runner = loaded.discomfort.executor.nested.NestedRunner("10")
    record = engine.LoopRecord()
    with pytest.raises(loaded.discomfort.errors.LoopError) as failed:
        engine.run_loop(body, engine.LoopSettings(10, accumulate=("image",)), runner, record=record)
    assert failed.value.iteration == 5 and failed.value.node_id == "3"
    assert failed.value.class_type == "DiscomfortTestFailAt"
    assert failed.value.record is record
    assert record.iterations == 4 and len(record.accumulated["image"]) == 4
    runner.close()


def test_body_that_feeds_on_the_loops_own_output_is_refused_before_it_runs(comfy):
    from discomfort.errors import PromptValidationError

    prompt = invert_loop(2)
    prompt["7"] = node("ImageBlend", image1=["3", 0], image2=["10", 0], blend_factor=0.5, blend_mode="normal")
    prompt["4"]["inputs"]["value"] = ["7", 0]
    with pytest.raises(PromptValidationError, match="loop 10 is linked to its own body 'loop': node 7 takes its "
                       "output") as refused:  # fmt: skip
        comfy.run(prompt)
    assert list(refused.value.node_errors) == ["10"]


def test_no_revalidation_and_no_growth_per_iteration(comfy, loaded, monkeypatch):
    import execution

    calls = []
    real_validate = execution.validate_prompt

    async def counting(*args, **kwargs):
        calls.append(1)
        return await real_validate(*args, **kwargs)

    monkeypatch.setattr(execution, "validate_prompt", counting)
    engine, plan = loaded.discomfort.executor.engine, loaded.discomfort.executor.plan
    body = plan.plan_loop(plan.prepare_prompt(invert_loop(0))["10"], "10")
    runner = loaded.discomfort.executor.nested.NestedRunner("10")
    try:
        record = engine.run_loop(body, engine.LoopSettings(200), runner)
        assert len(calls) == 1, "the body was validated more than once"
        cached_after_200 = runner.cached_node_count()
        engine.run_loop(body, engine.LoopSettings(2), runner)
        assert runner.cached_node_count() == cached_after_200, "the private cache grew with the iteration count"
    finally:
        runner.close()
    seconds = sorted(record.seconds[:50]), sorted(record.seconds[-50:])
    early, late = seconds[0][25], seconds[1][25]
    # A generous bound: this catches work proportional to the iteration index, not a few percent of noise.
    assert late < 3 * early + 0.002, f"median iteration took {early * 1e3:.2f} ms early and {late * 1e3:.2f} ms late"
    assert len(loaded.discomfort.executor.carry.runs) == 0, "a finished run was left registered"


def test_nested_loops_compile_and_validate_each_body_once(comfy, captured, loaded, monkeypatch):
    import execution

    validated, compiled = [], []
    real_validate, plan = execution.validate_prompt, loaded.discomfort.executor.plan
    real_plan_loop = plan.plan_loop

    async def counting_validate(*args, **kwargs):
        validated.append(args[0])
        return await real_validate(*args, **kwargs)

    def counting_plan_loop(loop_node, loop_id):
        compiled.append(loop_id)
        return real_plan_loop(loop_node, loop_id)

    monkeypatch.setattr(execution, "validate_prompt", counting_validate)
    monkeypatch.setattr(plan, "plan_loop", counting_plan_loop)
    prompt, result = nested([("once_a", 3), ("once_b", 3), ("once_c", 2)])
    comfy.run({**prompt, "out": capture(result, "total")})
    assert captured["total"] == [18]
    # Without the caches: the middle loop once per outer iteration (3), the inner once per middle iteration (9).
    assert sorted(compiled) == ["once_a_loop", "once_b_loop", "once_c_loop"], compiled
    assert len(validated) == 1 + 3, validated  # the outer prompt, then each loop's body once
