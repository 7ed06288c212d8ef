"""What it costs to get a loop ready: preparing a queued prompt, and planning a loop nested in another.

    python3 tools/dev.py python bench/prepare.py [--repeats 7] [--quick] [--out DIR]

1. Preparation (`executor.plan.prepare_prompt`, the on-prompt hook that runs on ComfyUI's event loop) against
   nesting depth 1...8 and against the number of loops side by side 1...1000. Pure Python: no ComfyUI needed.
   Time per node stays flat when preparation is linear in the prompt's size.
2. A three-deep nest run on the embedded ComfyUI with the plan and validation caches on and off, side by side in
   each repeat: what the inner loops cost per run of theirs, before (off: compiled and validated on every
   iteration of the loop around them) and after (on).

Writes prepare.json and prepare.md (its tables, for docs/benchmarks.md) into bench/results.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

DEPTHS = (1, 2, 3, 4, 5, 6, 7, 8)
WIDTH = 30  # feeder nodes in each level of the timed nest: validated every run, executed once
COUNTS = (1, 10, 100, 1000)


def node(class_type: str, **inputs: Any) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def port(uid: str, value: list, tags: str) -> dict:
    return node("DiscomfortPort", unique_id=uid, tags=tags, value=value)


def loop(body: str, iterations: int = 2) -> dict:
    return node("DiscomfortLoop", body=body, iterations=iterations, uids="x", accumulate="", stop_when="")


def side_by_side(count: int) -> dict:
    """`count` refinement loops, each with a loader, a step and a save in its body."""
    prompt = {}
    for k in range(count):
        prompt[f"{k}.load"] = node("EmptyImage", width=8, height=8, batch_size=1, color=k)
        prompt[f"{k}.in"] = port("x", [f"{k}.load", 0], f"b{k}")
        prompt[f"{k}.step"] = node("ImageInvert", image=[f"{k}.in", 0])
        prompt[f"{k}.out"] = port("x", [f"{k}.step", 0], f"b{k}")
        prompt[f"{k}.save"] = node("PreviewImage", images=[f"{k}.step", 0])
        prompt[f"{k}.loop"] = loop(f"b{k}")
    return prompt


def add_feeders(prompt: dict, level: str) -> None:
    """WIDTH constants summed by a balanced tree of adds, mixed into the value right after `level`'s entry: nodes
    the level's body needs, which its private cache runs once but every validation goes over. (A balanced tree,
    because ComfyUI's own cache signature of a node walks its whole ancestry: a long chain would measure that.)"""
    layer = []
    for step in range(WIDTH):
        prompt[f"{level}.w{step}"] = node("DiscomfortTestAdd", a=step, b=0)
        layer.append([f"{level}.w{step}", 0])
    while len(layer) > 1:
        merged = []
        for index in range(0, len(layer) - 1, 2):
            node_id = f"{level}.s{len(prompt)}"
            prompt[node_id] = node("DiscomfortTestAdd", a=layer[index], b=layer[index + 1])
            merged.append([node_id, 0])
        layer = merged + layer[len(layer) - len(layer) % 2 :]
    entry, mix = [f"{level}_in", 0], f"{level}.mix"
    for other in prompt.values():
        for name, value in other["inputs"].items():
            if value == entry:
                other["inputs"][name] = [mix, 0]
    prompt[mix] = node("DiscomfortTestAdd", a=entry, b=layer[0])


def timed(function: Callable[[], Any], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def preparation(repeats: int) -> dict[str, dict[str, float]]:
    from graphs import nested

    from discomfort.executor.plan import prepare_prompt

    rows = {}
    for depth in DEPTHS:
        prompt, _ = nested([(f"l{level}", 2) for level in range(1, depth + 1)])
        rows[f"depth {depth}"] = {**timed(lambda p=prompt: prepare_prompt(p), repeats), "nodes": len(prompt)}
    for count in COUNTS:
        prompt = side_by_side(count)
        rows[f"{count} loops"] = {**timed(lambda p=prompt: prepare_prompt(p), repeats), "nodes": len(prompt)}
    return rows


def nested_runs(comfy: Any, repeats: int, levels: tuple[int, int, int]) -> dict[str, Any]:
    """The three-deep nest with the caches on and off, alternating: per run of an inner loop node, the whole run
    and the part of it spent compiling and validating bodies (what the caches save)."""
    from graphs import nested

    import discomfort.executor.loop_node as loop_node
    import discomfort.executor.nested as nested_module
    import discomfort.executor.plan as plan_module

    outer, middle, _ = levels
    inner_runs = outer + outer * middle  # the middle loop runs once per outer iteration, the inner once per middle
    kept = (loop_node.PLAN_CACHE_SIZE, nested_module.VALIDATED_KEPT)
    spent = {"seconds": 0.0}
    real_plan, real_validate = plan_module.plan_loop, nested_module.NestedRunner.validate

    def timing(function: Callable) -> Callable:
        def timed_call(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args)
            finally:
                spent["seconds"] += time.perf_counter() - started

        return timed_call

    plan_module.plan_loop, nested_module.NestedRunner.validate = timing(real_plan), timing(real_validate)
    samples: dict[str, list[tuple[float, float]]] = {"caches on": [], "caches off": []}
    try:
        for repeat in range(-1, repeats):  # -1: a warm-up of each, not counted
            for label in ("caches on", "caches off") if repeat % 2 == 0 else ("caches off", "caches on"):
                loop_node.PLAN_CACHE_SIZE, nested_module.VALIDATED_KEPT = kept if label == "caches on" else (0, 0)
                # New node ids each sample: node instances (and the caches they hold) are kept by id between runs.
                names = [f"{level}{repeat}{label[7:]}" for level in "abc"]
                prompt, result = nested(list(zip(names, levels, strict=True)))
                prompt["keep"] = node("DiscomfortTestCapture", value=result, label="bench")
                for name in names:
                    add_feeders(prompt, name)
                spent["seconds"] = 0.0
                started = time.perf_counter()
                comfy.run(prompt)
                if repeat >= 0:
                    samples[label].append((time.perf_counter() - started, spent["seconds"]))
    finally:
        loop_node.PLAN_CACHE_SIZE, nested_module.VALIDATED_KEPT = kept
        plan_module.plan_loop, nested_module.NestedRunner.validate = real_plan, real_validate
    rows = {}
    for label, values in samples.items():
        whole, planning = [1e3 * total / inner_runs for total, _ in values], [1e3 * p / inner_runs for _, p in values]
        rows[label] = {"ms per inner loop run": statistics.median(whole), "min": min(whole), "max": max(whole),
                       "ms compiling and validating": statistics.median(planning)}  # fmt: skip
    pairs = [off[1] / max(on[1], 1e-9) for on, off in zip(samples["caches on"], samples["caches off"], strict=True)]
    return {"levels": list(levels), "inner loop runs": inner_runs, "rows": rows,
            "compiling and validating, off / on (median of pairs)": statistics.median(pairs)}  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    lines = ["### Preparing a prompt (`prepare_prompt`, on ComfyUI's event loop)", "",
             "| prompt | nodes | ms median | min-max | µs per node |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in results["preparation"].items():
        lines.append(f"| {name} | {row['nodes']} | {1e3 * row['median']:.2f} | {1e3 * row['min']:.2f}-"
                     f"{1e3 * row['max']:.2f} | {1e6 * row['median'] / row['nodes']:.1f} |")  # fmt: skip
    runs = results["nested"]
    shape = " x ".join(map(str, runs["levels"]))
    lines += [
        "",
        f"### A three-deep nest ({shape} iterations, {WIDTH} feeders a level), per inner loop run",
        "",
        "| caches | ms per run | min-max | of which compiling and validating, ms |",
        "|---|---:|---:|---:|",
    ]
    for label, row in runs["rows"].items():
        lines.append(f"| {label} | {row['ms per inner loop run']:.2f} | {row['min']:.2f}-{row['max']:.2f} | "
                     f"{row['ms compiling and validating']:.2f} |")  # fmt: skip
    ratio = runs["compiling and validating, off / on (median of pairs)"]
    lines += ["", f"Without the plan and validation caches an inner loop run spends **{ratio:.0f}x** as long compiling "
              "and validating bodies (median of pairs measured side by side); the rest of a run is ComfyUI executing "
              "the body, which both share."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats and a small nest: a smoke run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    levels = (2, 2, 2) if args.quick else (4, 4, 4)
    results: dict[str, Any] = {"preparation": preparation(repeats)}

    from discomfort.executor.embedded import boot

    testing = REPO / "tests" / "testing_nodes"
    comfy = boot(custom_node_dirs=[testing])
    gc.collect()
    gc.freeze()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bench") as thread:
        results["nested"] = thread.submit(nested_runs, comfy, repeats, levels).result()
    text = markdown(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prepare.json").write_text(json.dumps(results, indent=1))
    (args.out / "prepare.md").write_text(text)
    print(f"wrote prepare.json and prepare.md in {args.out}")
    os._exit(0)  # the embedded ComfyUI's worker threads need no orderly shutdown


if __name__ == "__main__":
    main()
