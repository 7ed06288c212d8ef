"""Per-iteration cost, memory and loader reuse of loop strategies, side by side in one run on one machine.

    python3 tools/dev.py python bench/loops.py [--repeats 3] [--quick]

Strategies, on a cheap body (ImageInvert on 1x64x64x3) and a heavy one (ImageBlur on 1x512x512x3):
  (a) unrolled: the body N times in one prompt, the executor's own lower bound
  (b) expansion: ComfyUI's graph-expansion For loop (tests/execution/testing_nodes), as Easy-Use and others do it
  (c) discomfort: a DiscomfortLoop
  (d) http: one prompt per iteration to a running server, waiting for each (what queue-based loops do)
  (e) bare: a plain Python loop calling one reused PromptExecutor, no Discomfort machinery (our floor)
Prints a table and ratios, writes bench/results/loops.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO / "tests"))

HELD: dict[str, Any] = {}  # what the bench-only source and sink nodes pass around
LOADS = {"count": 0}


class BenchSink:
    """An output node that keeps its value and nothing else (no PNG encoding in the measurement)."""

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "keep"
    CATEGORY = "bench"

    @classmethod
    def INPUT_TYPES(cls):
        from discomfort.ports.anytype import ANY

        return {"required": {"value": (ANY, {})}}

    def keep(self, value):
        HELD["out"] = value
        return {}


class BenchSource:
    """Gives the value the bare loop holds; its token changes every iteration, so it always runs."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "give"
    CATEGORY = "bench"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"token": ("INT", {"default": 0, "min": 0, "max": 10**9})}}

    def give(self, token):
        return (HELD["in"],)


class BenchLoader:
    """A loader stand-in that counts its runs."""

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "load"
    CATEGORY = "bench"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "model"})}}

    def load(self, name):
        LOADS["count"] += 1
        return (1.0,)


def body_node(heavy: bool, image: list) -> dict:
    if heavy:
        return {"class_type": "ImageBlur", "inputs": {"image": image, "blur_radius": 4, "sigma": 1.0}}
    return {"class_type": "ImageInvert", "inputs": {"image": image}}


RUNS = {"count": 0}


def source(heavy: bool) -> dict:
    # A new color every run: the outer executor must not answer a repeat from its cache.
    RUNS["count"] += 1
    size = 512 if heavy else 64
    color = 0x336699 + RUNS["count"]
    return {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}}


def unrolled(n: int, heavy: bool) -> dict:
    prompt = {"src": source(heavy)}
    previous = ["src", 0]
    for i in range(n):
        prompt[f"b{i}"] = body_node(heavy, previous)
        previous = [f"b{i}", 0]
    prompt["sink"] = {"class_type": "BenchSink", "inputs": {"value": previous}}
    return prompt


def expansion(n: int, heavy: bool, loader: bool = False) -> dict:
    prompt = {
        "src": source(heavy),
        "open": {"class_type": "TestForLoopOpen", "inputs": {"remaining": n, "initial_value1": ["src", 0]}},
        "body": body_node(heavy, ["open", 2]),
        "close": {"class_type": "TestForLoopClose", "inputs": {"flow_control": ["open", 0],
                                                                "initial_value1": ["body", 0]}},
        "sink": {"class_type": "BenchSink", "inputs": {"value": ["close", 0]}},
    }  # fmt: skip
    if loader:
        prompt["load"] = {"class_type": "BenchLoader", "inputs": {"name": "model"}}
        blend = {"image1": ["open", 2], "image2": ["open", 2], "blend_factor": ["load", 0], "blend_mode": "normal"}
        prompt["body"] = {"class_type": "ImageBlend", "inputs": blend}
    return prompt


def discomfort_loop(n: int, heavy: bool, loader: bool = False) -> dict:
    def port(value=None):
        inputs = {"unique_id": "image", "tags": "loop", **({"value": value} if value else {})}
        return {"class_type": "DiscomfortPort", "inputs": inputs}

    prompt = {
        "src": source(heavy), "in": port(["src", 0]), "body": body_node(heavy, ["in", 0]), "out": port(["body", 0]),
        "loop": {"class_type": "DiscomfortLoop", "inputs": {"body": "loop", "iterations": n, "uids": "image",
                                                            "accumulate": "", "stop_when": ""}},
        "sink": {"class_type": "BenchSink", "inputs": {"value": ["loop", 0]}},
    }  # fmt: skip
    if loader:
        prompt["load"] = {"class_type": "BenchLoader", "inputs": {"name": "model"}}
        blend = {"image1": ["in", 0], "image2": ["in", 0], "blend_factor": ["load", 0], "blend_mode": "normal"}
        prompt["body"] = {"class_type": "ImageBlend", "inputs": blend}
    return prompt


def bare_loop(n: int, heavy: bool) -> float:
    """One PromptExecutor, reused; the previous result handed in through a module variable."""
    import execution

    from discomfort.executor import compat
    from discomfort.executor.embedded import HeadlessServer

    executor = execution.PromptExecutor(HeadlessServer(), cache_type=execution.CacheType.CLASSIC,
                                        cache_args=compat.cache_args())  # fmt: skip
    template = {"src": {"class_type": "BenchSource", "inputs": {"token": 0}}, "body": body_node(heavy, ["src", 0]),
                "sink": {"class_type": "BenchSink", "inputs": {"value": ["body", 0]}}}  # fmt: skip
    import torch

    HELD["in"] = torch.rand(1, 512, 512, 3) if heavy else torch.rand(1, 64, 64, 3)
    started = time.perf_counter()
    for i in range(n):
        prompt = {node_id: dict(node) for node_id, node in template.items()}
        prompt["src"] = {"class_type": "BenchSource", "inputs": {"token": i}}
        executor.execute(prompt, uuid.uuid4().hex, {}, ["sink"])
        HELD["in"] = HELD["out"]
    return time.perf_counter() - started


def timed(comfy, prompt: dict) -> float:
    started = time.perf_counter()
    comfy.run(prompt)
    return time.perf_counter() - started


def http_loop(client, n: int, heavy: bool) -> float:
    started = time.perf_counter()
    for i in range(n):
        prompt = {"src": source(heavy), "body": body_node(heavy, ["src", 0]),
                  "save": {"class_type": "PreviewImage", "inputs": {"images": ["body", 0]}}}  # fmt: skip
        prompt["src"]["inputs"]["color"] = i  # a new prompt every time, as a re-queue with changed state would be
        run = client.run(prompt)
        assert run.status == "success"
    return time.perf_counter() - started


def median_ms(samples: list[float], n: int) -> dict:
    per = sorted(1e3 * s / n for s in samples)
    return {"median_ms": statistics.median(per), "min_ms": per[0], "max_ms": per[-1]}


LABELS = {"a_unrolled": "(a) unrolled", "b_expansion": "(b) expansion loop", "c_discomfort": "(c) Discomfort",
          "d_http": "(d) prompt per iteration (HTTP)", "e_bare": "(e) bare executor"}  # fmt: skip


def plot(results: dict, path: Path) -> None:
    """ms per iteration against N, one panel per body, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, body in zip(axes, ("cheap", "heavy"), strict=True):
        rows = {int(key.split("N=")[1]): row for key, row in results["per_iteration"].items() if key.startswith(body)}
        for color, (name, label) in enumerate(LABELS.items()):
            points = sorted((n, row[name]["median_ms"]) for n, row in rows.items() if name in row)
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=label, color=f"C{color}")
        axis.set(xscale="log", yscale="log", xlabel="iterations N", title=f"{body} body")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms per iteration (median)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N = 50 and 200 only, for a smoke run")
    args = parser.parse_args()
    import os

    from discomfort.errors import DiscomfortError
    from discomfort.executor.embedded import boot, find_comfyui

    root = find_comfyui()
    comfy = boot(custom_node_dirs=[root / "tests" / "execution" / "testing_nodes"])
    import nodes

    nodes.NODE_CLASS_MAPPINGS.update({"BenchSink": BenchSink, "BenchSource": BenchSource, "BenchLoader": BenchLoader})
    sizes = (50, 200) if args.quick else (50, 200, 1000)
    results: dict[str, Any] = {"per_iteration": {}, "notes": {}}
    for heavy in (False, True):
        body = "heavy" if heavy else "cheap"
        for n in sizes:
            row: dict[str, Any] = {}
            strategies = {
                "a_unrolled": lambda n=n, heavy=heavy: timed(comfy, unrolled(n, heavy)),
                "b_expansion": lambda n=n, heavy=heavy: timed(comfy, expansion(n, heavy)),
                "c_discomfort": lambda n=n, heavy=heavy: timed(comfy, discomfort_loop(n, heavy)),
                "e_bare": lambda n=n, heavy=heavy: bare_loop(n, heavy),
            }
            for name, run in strategies.items():
                if name == "b_expansion" and n > 200:
                    results["notes"][f"{body} N={n} b"] = "skipped: the expansion loop's cost grows with N squared"
                    continue
                try:
                    samples = [run() for _ in range(args.repeats)]
                except (RecursionError, DiscomfortError) as error:
                    results["notes"][f"{body} N={n} {name}"] = f"failed: {error}"[:300]
                    print(f"{body:5s} N={n:5d} {name:13s} failed: {str(error)[:120]}", flush=True)
                    continue
                row[name] = median_ms(samples, n)
                print(f"{body:5s} N={n:5d} {name:13s} {row[name]['median_ms']:9.3f} ms/iteration "
                      f"[{row[name]['min_ms']:.3f}-{row[name]['max_ms']:.3f}]", flush=True)  # fmt: skip
            results["per_iteration"][f"{body} N={n}"] = row
    # (d) one prompt per iteration over HTTP, cheap body, N=50.
    import tempfile

    from comfy_client import comfy_server

    with tempfile.TemporaryDirectory() as base:
        (Path(base) / "custom_nodes").mkdir()
        with comfy_server(root, Path(base)) as server:
            client = server.client()
            http_loop(client, 5, False)
            samples = [http_loop(client, 50, False) for _ in range(args.repeats)]
            results["per_iteration"]["cheap N=50"]["d_http"] = median_ms(samples, 50)
            client.close()
    # Memory growth: RSS before and after a long run.
    process = psutil.Process()
    memory = {}
    for name, prompt, n in (
        ("c_discomfort", discomfort_loop(1000, False), 1000),
        ("b_expansion", expansion(200, False), 200),
    ):
        gc.collect()
        before = process.memory_info().rss
        comfy.run(prompt)
        gc.collect()
        memory[name] = {"iterations": n, "rss_growth_mb": (process.memory_info().rss - before) / 1e6}
    results["memory"] = memory
    # Loader reuse: how often a loader inside the body runs over 20 iterations.
    reuse = {}
    for name, builder in (("b_expansion", expansion), ("c_discomfort", discomfort_loop)):
        LOADS["count"] = 0
        comfy.run(builder(20, False, loader=True))
        reuse[name] = LOADS["count"]
    results["loader_runs_over_20_iterations"] = reuse
    cheap50 = results["per_iteration"]["cheap N=50"]
    ratios = {"c/e cheap N=50": cheap50["c_discomfort"]["median_ms"] / cheap50["e_bare"]["median_ms"],
              "c/a cheap N=50": cheap50["c_discomfort"]["median_ms"] / cheap50["a_unrolled"]["median_ms"],
              "d/c cheap N=50": cheap50["d_http"]["median_ms"] / cheap50["c_discomfort"]["median_ms"]}  # fmt: skip
    for body in ("cheap", "heavy"):
        row = results["per_iteration"][f"{body} N=200"]
        ratios[f"b/c {body} N=200"] = row["b_expansion"]["median_ms"] / row["c_discomfort"]["median_ms"]
    if not args.quick:
        ratios["c N=1000 / c N=50 cheap"] = (results["per_iteration"]["cheap N=1000"]["c_discomfort"]["median_ms"]
                                              / cheap50["c_discomfort"]["median_ms"])  # fmt: skip
    results["ratios"] = ratios
    print(json.dumps({"ratios": ratios, "memory": memory, "loader_runs": reuse, "notes": results["notes"]}, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loops.json").write_text(json.dumps(results, indent=1))
    plot(results, RESULTS / "loops.png")
    os._exit(0)  # the embedded ComfyUI's worker threads need no orderly shutdown


if __name__ == "__main__":
    main()
