"""Per-iteration cost, memory and loader reuse of loop strategies, side by side in one run on one machine.

    python3 tools/dev.py bench [--repeats 5] [--quick]        (this and bench/codec.py)
    python3 tools/dev.py python bench/loops.py [--repeats 5] [--quick] [--out DIR]

Strategies, on a cheap body (ImageInvert on 1x64x64x3) and a heavy one (ImageBlur, radius 8, on 1x512x512x3):
  (a) unrolled: the body N times in one prompt, the executor's own lower bound
  (b) expansion: ComfyUI's graph-expansion For loop (tests/execution/testing_nodes), as Easy-Use and others do it
  (c) discomfort: a DiscomfortLoop, the whole prompt timed (preparing, validating, the loop)
  (d) http: one prompt per iteration to a running server, waiting on the websocket for each (queue-based loops)
  (e) bare executor: a plain Python loop calling one reused PromptExecutor's execute(), no Discomfort machinery
  (f) bare async executor: the same, awaiting execute_async on one event loop (execute() starts a new one per call)
  (t) bare torch: the node's own function called in a Python loop, no executor at all
Each repeat runs every strategy once, in turn, so a ratio is taken between samples measured moments apart;
the table shows medians over repeats, [min-max]. Writes loops.json, loops.md (its tables, for
docs/benchmarks.md) and loops.png into bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from discomfort.errors import ExecutionError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

HELD: dict[str, Any] = {}  # what the bench-only source and sink nodes pass around
LOADS = {"count": 0}
PROBES: list[tuple[float, int]] = []  # (perf_counter, RSS bytes) each time a probe ran
# A probed run stops past these: the expansion loop would take more than an hour and all 24 GiB at N=1000.
BUDGET = {"seconds": 150.0, "rss_growth_bytes": 6e9}


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
    """Gives the value the bare loops hold; its token changes every iteration, so it always runs."""

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


class BenchProbe:
    """Passes an image on and notes the time and the process's RSS: one note per iteration of a loop body."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "probe"
    CATEGORY = "bench"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def probe(self, image):
        PROBES.append((time.perf_counter(), psutil.Process().memory_info().rss))
        seconds, growth = PROBES[-1][0] - PROBES[0][0], PROBES[-1][1] - PROBES[0][1]
        if seconds > BUDGET["seconds"] or growth > BUDGET["rss_growth_bytes"]:
            raise OverBudget(f"stopped after {len(PROBES)} iterations: {seconds:.0f} s, RSS {growth / 1e9:+.1f} GB")
        return (image,)


class OverBudget(Exception):
    pass


BENCH_NODES = {"BenchSink": BenchSink, "BenchSource": BenchSource, "BenchLoader": BenchLoader,
               "BenchProbe": BenchProbe}  # fmt: skip
BLUR = {"blur_radius": 8, "sigma": 1.0}  # bare torch 12-15 ms, as the reference heavy body


def image_size(heavy: bool) -> int:
    return 512 if heavy else 64


def body_node(heavy: bool, image: list) -> dict:
    if heavy:
        return {"class_type": "ImageBlur", "inputs": {"image": image, **BLUR}}
    return {"class_type": "ImageInvert", "inputs": {"image": image}}


_colors = iter(range(0x336699, 0xFFFFFF))


def source(heavy: bool) -> dict:
    # A new color every prompt: the outer executor must not answer a repeat from its cache.
    size = image_size(heavy)
    inputs = {"width": size, "height": size, "batch_size": 1, "color": next(_colors)}
    return {"class_type": "EmptyImage", "inputs": inputs}


def unrolled(n: int, heavy: bool) -> dict:
    prompt = {"src": source(heavy)}
    previous = ["src", 0]
    for i in range(n):
        prompt[f"b{i}"] = body_node(heavy, previous)
        previous = [f"b{i}", 0]
    prompt["sink"] = {"class_type": "BenchSink", "inputs": {"value": previous}}
    return prompt


def with_extras(prompt: dict, entry: list, heavy: bool, loader: bool, probe: bool) -> dict:
    """The body of `prompt` made a loader-fed blend (counts loader runs), or given a probe after it (notes RSS)."""
    if loader:
        prompt["load"] = {"class_type": "BenchLoader", "inputs": {"name": "model"}}
        blend = {"image1": entry, "image2": entry, "blend_factor": ["load", 0], "blend_mode": "normal"}
        prompt["body"] = {"class_type": "ImageBlend", "inputs": blend}
    if probe:
        prompt["probe"] = {"class_type": "BenchProbe", "inputs": {"image": ["body", 0]}}
    return prompt


def expansion(n: int, heavy: bool, *, loader: bool = False, probe: bool = False) -> dict:
    prompt = {
        "src": source(heavy),
        "open": {"class_type": "TestForLoopOpen", "inputs": {"remaining": n, "initial_value1": ["src", 0]}},
        "body": body_node(heavy, ["open", 2]),
        "close": {"class_type": "TestForLoopClose", "inputs": {"flow_control": ["open", 0],
                                                                "initial_value1": ["body", 0]}},
        "sink": {"class_type": "BenchSink", "inputs": {"value": ["close", 0]}},
    }  # fmt: skip
    prompt = with_extras(prompt, ["open", 2], heavy, loader, probe)
    if probe:
        prompt["close"]["inputs"]["initial_value1"] = ["probe", 0]
    return prompt


def discomfort_loop(n: int, heavy: bool, *, loader: bool = False, probe: bool = False) -> dict:
    def port(value: list) -> dict:
        return {"class_type": "DiscomfortPort", "inputs": {"unique_id": "image", "tags": "loop", "value": value}}

    prompt = {
        "src": source(heavy), "in": port(["src", 0]), "body": body_node(heavy, ["in", 0]), "out": port(["body", 0]),
        "loop": {"class_type": "DiscomfortLoop", "inputs": {"body": "loop", "iterations": n, "uids": "image",
                                                            "accumulate": "", "stop_when": ""}},
        "sink": {"class_type": "BenchSink", "inputs": {"value": ["loop", 0]}},
    }  # fmt: skip
    prompt = with_extras(prompt, ["in", 0], heavy, loader, probe)
    if probe:
        prompt["out"] = port(["probe", 0])
    return prompt


def first_input(heavy: bool):
    import torch

    size = image_size(heavy)
    return torch.rand(1, size, size, 3)


class Strategies:
    """Each strategy as a function of (N, heavy) that runs N iterations and returns the seconds they took."""

    def __init__(self, comfy: Any, client: Any):
        self.comfy = comfy
        self.client = client

    def table(self) -> dict[str, Callable[[int, bool], float]]:
        return {"a_unrolled": self.unrolled, "b_expansion": self.expansion, "c_discomfort": self.discomfort,
                "d_http": self.http, "e_bare": self.bare, "f_bare_async": self.bare_async,
                "t_torch": self.torch}  # fmt: skip

    def settle(self) -> None:
        """Run a one-node prompt, so the next sample does not pay for dropping this one's cached outputs."""
        self.comfy.run({"src": source(False), "sink": {"class_type": "BenchSink", "inputs": {"value": ["src", 0]}}})
        HELD.clear()
        gc.collect()

    def _timed(self, prompt: dict) -> float:
        started = time.perf_counter()
        self.comfy.run(prompt)
        return time.perf_counter() - started

    def unrolled(self, n: int, heavy: bool) -> float:
        return self._timed(unrolled(n, heavy))

    def expansion(self, n: int, heavy: bool) -> float:
        return self._timed(expansion(n, heavy))

    def discomfort(self, n: int, heavy: bool) -> float:
        return self._timed(discomfort_loop(n, heavy))

    def http(self, n: int, heavy: bool) -> float:
        started = time.perf_counter()
        for _ in range(n):
            # PreviewImage: what a queue-based loop shows or saves; carrying state through files would cost more.
            prompt = {"src": source(heavy), "body": body_node(heavy, ["src", 0]),
                      "show": {"class_type": "PreviewImage", "inputs": {"images": ["body", 0]}}}  # fmt: skip
            run = self.client.run(prompt)
            assert run.status == "success", run.messages[-3:]
        return time.perf_counter() - started

    def _bare(self, n: int, heavy: bool, execute: Callable[[Any, dict, str], None]) -> float:
        """A body prompt run N times on one PromptExecutor, the previous result handed in by BenchSource; it talks
        to the embedded ComfyUI's headless server, as the prompts the engine runs do."""
        import execution

        from discomfort.executor import compat

        executor = execution.PromptExecutor(self.comfy.server, cache_type=execution.CacheType.CLASSIC,
                                            cache_args=compat.cache_args())  # fmt: skip
        body = {"body": body_node(heavy, ["src", 0]),
                "sink": {"class_type": "BenchSink", "inputs": {"value": ["body", 0]}}}  # fmt: skip
        HELD["in"] = first_input(heavy)
        started = time.perf_counter()
        for i in range(n):
            prompt = {"src": {"class_type": "BenchSource", "inputs": {"token": i}}, **body}
            execute(executor, prompt, uuid.uuid4().hex)
            HELD["in"] = HELD["out"]
        return time.perf_counter() - started

    def bare(self, n: int, heavy: bool) -> float:
        return self._bare(n, heavy, lambda executor, prompt, prompt_id: executor.execute(
            prompt, prompt_id, {}, ["sink"]))  # fmt: skip

    def bare_async(self, n: int, heavy: bool) -> float:
        loop = asyncio.new_event_loop()
        try:
            return self._bare(n, heavy, lambda executor, prompt, prompt_id: loop.run_until_complete(
                executor.execute_async(prompt, prompt_id, {}, ["sink"])))  # fmt: skip
        finally:
            loop.close()

    @staticmethod
    def torch(n: int, heavy: bool) -> float:
        import nodes

        if heavy:
            blur = nodes.NODE_CLASS_MAPPINGS["ImageBlur"]

            def step(image):
                return blur.execute(image, **BLUR)[0]
        else:
            invert = nodes.NODE_CLASS_MAPPINGS["ImageInvert"]()

            def step(image):
                return invert.invert(image)[0]

        image = first_input(heavy)
        started = time.perf_counter()
        for _ in range(n):
            image = step(image)
        return time.perf_counter() - started


def applies(name: str, body: str, n: int) -> str | None:
    """Why a strategy is left out of a cell of the table, or None."""
    if name == "b_expansion" and n > 200:
        return "skipped: the expansion loop's time per iteration grows with N (see the memory run for N=1000)"
    if name == "d_http" and (body != "cheap" or n > 200):
        return "measured on the cheap body up to N=200"
    return None


@dataclass(frozen=True)
class Ratio:
    top: str
    bottom: str
    body: str
    n: int
    bound: float | None = None  # the target
    at_least: bool = False  # the target is a floor, not a ceiling

    @property
    def name(self) -> str:
        return f"{self.top[0]}/{self.bottom[0]} {self.body} N={self.n}"

    def met(self, value: float) -> bool | None:
        if self.bound is None:
            return None
        return value >= self.bound if self.at_least else value <= self.bound


RATIOS = (
    Ratio("c_discomfort", "a_unrolled", "cheap", 50, 1.2),
    Ratio("c_discomfort", "a_unrolled", "cheap", 200, 1.0),
    Ratio("c_discomfort", "e_bare", "cheap", 50, 1.3),
    Ratio("c_discomfort", "e_bare", "cheap", 200, 1.3),
    Ratio("c_discomfort", "e_bare", "cheap", 1000, 1.3),
    Ratio("c_discomfort", "f_bare_async", "cheap", 200),
    Ratio("c_discomfort", "f_bare_async", "cheap", 1000),
    Ratio("b_expansion", "c_discomfort", "cheap", 200, 50, at_least=True),
    Ratio("b_expansion", "c_discomfort", "heavy", 200, 5, at_least=True),
    Ratio("d_http", "c_discomfort", "cheap", 50, 10, at_least=True),
    Ratio("d_http", "c_discomfort", "cheap", 200, 10, at_least=True),
    Ratio("c_discomfort", "t_torch", "heavy", 200, 1.15),
    Ratio("c_discomfort", "t_torch", "heavy", 1000, 1.15),
)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure_cell(strategies: Strategies, body: str, n: int, repeats: int, notes: dict) -> dict[str, list[float]]:
    """Seconds per strategy, one sample per repeat, strategies taking turns within each repeat."""
    heavy = body == "heavy"
    table = strategies.table()
    names = []
    for name, run in table.items():
        skipped = applies(name, body, n)
        if skipped:
            notes[f"{body} N={n} {name}"] = skipped
            continue
        try:
            run(n, heavy)  # warm-up: first-run imports and allocations are not what a loop costs
        except Exception as error:  # the unrolled prompt fails validation at N=1000, as expected
            notes[f"{body} N={n} {name}"] = f"failed: {error}"[:300]
            print(f"{body:5s} N={n:5d} {name:13s} failed: {str(error)[:150]}", flush=True)
            continue
        names.append(name)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        turn = names[repeat % len(names) :] + names[: repeat % len(names)]  # no strategy always goes first
        for name in turn:
            strategies.settle()
            samples[name].append(table[name](n, heavy))
    for name in names:
        ms = summary([1e3 * s / n for s in samples[name]])
        print(f"{body:5s} N={n:5d} {name:13s} {ms['median']:9.3f} ms/iteration [{ms['min']:.3f}-{ms['max']:.3f}]",
              flush=True)  # fmt: skip
    return samples


def probed_run(strategies: Strategies, prompt: dict, n: int) -> dict[str, Any]:
    """Run a loop whose body holds a probe; RSS and time per iteration from the probe's notes."""
    strategies.settle()
    PROBES.clear()
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    stopped = None
    try:
        strategies.comfy.run(prompt)
    except ExecutionError as error:
        if "OverBudget" not in str(error):
            raise
        stopped = str(error).rpartition("OverBudget: ")[2]
    seconds = time.perf_counter() - started
    gc.collect()
    after = psutil.Process().memory_info().rss
    notes = list(PROBES)
    assert stopped or len(notes) == n, f"the probe ran {len(notes)} times in {n} iterations"
    times = [1e3 * (b[0] - a[0]) for a, b in itertools.pairwise(notes)]
    tenth = max(1, len(times) // 10)
    return {
        "iterations": len(notes), "planned": n, "stopped": stopped, "seconds": seconds,
        "rss_growth_mb": (after - before) / 1e6,
        "rss_growth_per_iteration_kb": (notes[-1][1] - notes[0][1]) / 1e3 / max(1, len(notes) - 1),
        "rss_mb": [(rss - before) / 1e6 for _, rss in notes],
        "ms_per_iteration_first_tenth": statistics.median(times[:tenth]),
        "ms_per_iteration_last_tenth": statistics.median(times[-tenth:]),
        "ms_per_iteration": times,
    }  # fmt: skip


def memory_runs(strategies: Strategies, iterations: int) -> dict[str, Any]:
    runs = {}
    for name, builder, heavy in (("c_discomfort cheap", discomfort_loop, False),
                                 ("c_discomfort heavy", discomfort_loop, True),
                                 ("b_expansion cheap", expansion, False)):  # fmt: skip
        runs[name] = probed_run(strategies, builder(iterations, heavy, probe=True), iterations)
        run = runs[name]
        print(f"memory {name:20s} {run['iterations']} iterations: RSS {run['rss_growth_mb']:+.1f} MB "
              f"({run['rss_growth_per_iteration_kb']:+.2f} kB/iteration while running), ms/iteration "
              f"{run['ms_per_iteration_first_tenth']:.2f} in the first tenth, "
              f"{run['ms_per_iteration_last_tenth']:.2f} in the last {run['stopped'] or ''}", flush=True)  # fmt: skip
    return runs


def loader_runs(comfy: Any, iterations: int) -> dict[str, int]:
    """How many times a loader inside the body runs over a loop of `iterations`."""
    counts = {}
    for name, builder in (("b_expansion", expansion), ("c_discomfort", discomfort_loop)):
        LOADS["count"] = 0
        comfy.run(builder(iterations, False, loader=True))
        counts[name] = LOADS["count"]
    return counts


LABELS = {"a_unrolled": "(a) unrolled", "b_expansion": "(b) expansion loop", "c_discomfort": "(c) Discomfort",
          "d_http": "(d) prompt per iteration (HTTP)", "e_bare": "(e) bare executor",
          "f_bare_async": "(f) bare async executor", "t_torch": "(t) bare torch"}  # fmt: skip


def plot(results: dict, path: Path) -> None:
    """Top: ms per iteration against N, one panel per body. Bottom: RSS and time along one long run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8.4))
    for axis, body in zip(axes[0], ("cheap", "heavy"), strict=True):
        cells = {int(key.split("N=")[1]): row for key, row in results["per_iteration"].items() if key.startswith(body)}
        for color, (name, label) in enumerate(LABELS.items()):
            points = sorted((n, row[name]["median"]) for n, row in cells.items() if name in row)
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=label, color=f"C{color}")
        axis.set(xscale="log", yscale="log", xlabel="iterations N", ylabel="ms per iteration (median)",
                 title=f"{body} body")  # fmt: skip
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    for name, run in results["memory"].items():
        color = "C1" if name.startswith("b") else ("C2" if "cheap" in name else "C7")
        axes[1][0].plot(run["rss_mb"], label=name, color=color)
        axes[1][1].plot(run["ms_per_iteration"], label=name, color=color, linewidth=0.6)
    axes[1][0].set(xlabel="iteration", ylabel="RSS growth since the prompt started (MB)", title="memory along one run")
    axes[1][1].set(xlabel="iteration", ylabel="ms per iteration", yscale="log", title="time along one run")
    for axis in axes[1]:
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def markdown(results: dict) -> str:
    """The tables of docs/benchmarks.md: ms per iteration, ratios against their targets, memory, loader runs."""
    names = [name for name in LABELS if any(name in row for row in results["per_iteration"].values())]
    lines = ["| body, N | " + " | ".join(LABELS[name] for name in names) + " |", "|---|" + "---:|" * len(names)]
    for cell, row in results["per_iteration"].items():
        values = [f"{row[n]['median']:.3g} [{row[n]['min']:.3g}-{row[n]['max']:.3g}]" if n in row else "-"
                  for n in names]  # fmt: skip
        lines.append(f"| {cell} | " + " | ".join(values) + " |")
    lines += ["", "| ratio | median [min-max] over repeats | target | met |", "|---|---:|---:|:---:|"]
    for name, ratio in results["ratios"].items():
        spread = f" [{ratio['min']:.2f}-{ratio['max']:.2f}]" if "min" in ratio else ""
        target = "" if ratio["target"] is None else ("≥ " if ratio["at_least"] else "≤ ") + f"{ratio['target']:g}"
        met = {True: "yes", False: "**no**", None: ""}[ratio["met"]]
        lines.append(f"| {name} | {ratio['median']:.2f}{spread} | {target} | {met} |")
    lines += ["", "| one run of | iterations | RSS after - before | RSS growth per iteration | ms per iteration, "
              "first tenth -> last tenth |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, run in results["memory"].items():
        stopped = f" ({run['stopped']})" if run["stopped"] else ""
        lines.append(f"| {name} | {run['iterations']}{stopped} | {run['rss_growth_mb']:+.1f} MB | "
                     f"{run['rss_growth_per_iteration_kb']:+.1f} kB | {run['ms_per_iteration_first_tenth']:.2f} -> "
                     f"{run['ms_per_iteration_last_tenth']:.2f} |")  # fmt: skip
    loads = results["loader_runs_over_20_iterations"]
    lines += ["", "Runs of a loader inside the body over 20 iterations: "
              + ", ".join(f"{LABELS[name]} {count}" for name, count in loads.items()) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def measure(comfy: Any, root: Path, args: argparse.Namespace, sizes: tuple[int, ...], memory_iterations: int) -> dict:
    from comfy_client import comfy_server

    results: dict[str, Any] = {"per_iteration": {}, "ratios": {}, "notes": {}, "repeats": args.repeats,
                               "heavy_blur_radius": BLUR["blur_radius"]}  # fmt: skip
    samples: dict[tuple[str, int], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as base:
        (Path(base) / "custom_nodes").mkdir()
        with comfy_server(root, Path(base)) as server:
            client = server.client()
            strategies = Strategies(comfy, client)
            for body in ("cheap", "heavy"):
                for n in sizes:
                    samples[body, n] = measure_cell(strategies, body, n, args.repeats, results["notes"])
                    results["per_iteration"][f"{body} N={n}"] = {
                        name: summary([1e3 * s / n for s in seconds]) for name, seconds in samples[body, n].items()
                    }
            client.close()
    for ratio in RATIOS:
        cell = samples.get((ratio.body, ratio.n), {})
        if ratio.top in cell and ratio.bottom in cell:
            pairs = [top / bottom for top, bottom in zip(cell[ratio.top], cell[ratio.bottom], strict=True)]
            results["ratios"][ratio.name] = {**summary(pairs), "target": ratio.bound, "at_least": ratio.at_least,
                                             "met": ratio.met(statistics.median(pairs))}  # fmt: skip
    for body in ("cheap", "heavy"):
        first, last = (results["per_iteration"].get(f"{body} N={n}", {}).get("c_discomfort")
                       for n in (sizes[0], sizes[-1]))  # fmt: skip
        if first and last and sizes[-1] != sizes[0]:
            flat = last["median"] / first["median"]
            results["ratios"][f"c N={sizes[-1]} / c N={sizes[0]} {body} (medians)"] = {
                "median": flat, "target": 1.2, "at_least": False, "met": flat <= 1.2}  # fmt: skip
    results["memory"] = memory_runs(strategies, memory_iterations)
    results["loader_runs_over_20_iterations"] = loader_runs(comfy, 20)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="N = 50 and 200, 200 iterations for memory: a smoke run")
    parser.add_argument("--sizes", type=int, nargs="+", help="the values of N (default 50 200 1000)")
    parser.add_argument("--memory-iterations", type=int, help="iterations of the memory runs (default 1000)")
    parser.add_argument("--blur-radius", type=int, default=BLUR["blur_radius"], help="the heavy body's weight")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    BLUR["blur_radius"] = args.blur_radius
    sizes = args.sizes or ((50, 200) if args.quick else (50, 200, 1000))
    memory_iterations = args.memory_iterations or (200 if args.quick else 1000)

    from discomfort.executor.embedded import boot, find_comfyui

    root = find_comfyui()
    comfy = boot(custom_node_dirs=[root / "tests" / "execution" / "testing_nodes"])
    import nodes

    nodes.NODE_CLASS_MAPPINGS.update(BENCH_NODES)
    # Half a million objects live after boot; a full collection scanning them all during one sample would be noise.
    gc.collect()
    gc.freeze()
    # Measured on a thread other than the main one, as ComfyUI's server runs prompts on its prompt_worker thread:
    # glibc's main-thread heap hands large blocks back to the OS and faults them in again, which alone made a
    # 512x512 blur up to 1.5x slower there. The embedded ComfyUI runs its prompts on a thread of its own too.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bench") as thread:
        results = thread.submit(measure, comfy, root, args, sizes, memory_iterations).result()
    print("\nratio (median over repeats [min-max])   target   met")
    for name, ratio in results["ratios"].items():
        spread = f"[{ratio['min']:.2f}-{ratio['max']:.2f}]" if "min" in ratio else ""
        target = "" if ratio["target"] is None else ("≥ " if ratio["at_least"] else "≤ ") + f"{ratio['target']:g}"
        met = {True: "yes", False: "NO", None: ""}[ratio["met"]]
        print(f"{name:34s} {ratio['median']:8.2f} {spread:15s} {target:7s} {met}")
    print("loader runs over 20 iterations:", results["loader_runs_over_20_iterations"])
    for key, note in results["notes"].items():
        print(f"note: {key}: {note}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loops.json").write_text(json.dumps(results, indent=1))
    (args.out / "loops.md").write_text(markdown(results))
    plot(results, args.out / "loops.png")
    print(f"wrote loops.json, loops.md (the tables of docs/benchmarks.md) and loops.png in {args.out}")
    os._exit(0)  # the embedded ComfyUI's worker threads need no orderly shutdown


if __name__ == "__main__":
    main()
