"""Items per second of a folder loop fanned out over Ray workers against the same loop in-process, side by side.

    python3 tools/dev.py python bench/fanout.py [--items 40] [--repeats 3] [--quick] [--out DIR]

The heavy body of bench/loops.py (ImageBlur, radius 8, on 512x512), fed one PNG file per item as the folder loop
feeds it, its result leaving through an OUTPUT port. Three ways to run the same items:
  (i)  in-process: Runtime.map(workers=0), one loop on this process's private executor
  (1)  one Ray worker: Runtime.map(workers=1), the items going one by one to one embedded ComfyUI
  (2)  two Ray workers: Runtime.map(workers=2)
Workers are booted before timing (their boot is a one-off, like loading models). Each repeat runs the in-process
loop and a worker count one after the other, so a ratio is taken between runs measured moments apart; the table
shows medians over repeats, [min-max]. Ray's per-item overhead is the one-worker run's wall time per item less the
time the worker itself spent running the item (dispatch, the object store, the driver's bookkeeping); the
one-worker run's time per item less the in-process loop's is shown beside it (it adds the worker's one-iteration
run, which validates the body again, and Ray's OMP_NUM_THREADS=1 in a one-CPU worker).
Writes fanout.json and fanout.md (its table, for docs/benchmarks.md) into bench/results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on loopback only

REPO = Path(__file__).resolve().parent.parent


def body() -> dict:
    def port(uid: str, value: list | None = None) -> dict:
        inputs = {"unique_id": uid, "tags": ""} | ({"value": value} if value else {})
        return {"class_type": "DiscomfortPort", "inputs": inputs}

    return {
        "1": port("image"),
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 8, "sigma": 1.0}},
        "3": port("blurred", ["2", 0]),
    }


def make_images(folder: Path, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        pixels = np.random.default_rng(k).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"frame{k:04d}.png")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="8 items of 64x64, 2 repeats: a smoke run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.repeats, args.size = 8, 2, 64

    import ray

    import discomfort
    from discomfort.executor.ray_workers import WorkerPool

    scratch = Path(tempfile.mkdtemp(prefix="discomfort-bench-fanout-"))
    make_images(scratch / "input" / "frames", args.items, args.size)
    folder = scratch / "input" / "frames"
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=512 * 1024**2,
             log_to_driver=False, _node_ip_address="127.0.0.1")  # fmt: skip
    runs: dict[str, list[float]] = {"in_process": [], "ray_1": [], "ray_2": []}
    ratios: dict[str, list[float]] = {"ray_1": [], "ray_2": []}
    round_trip_ms: list[float] = []
    with discomfort.Runtime(output_directory=scratch / "output", input_directory=scratch / "input") as runtime:
        runtime.map(body(), folder, workers=0)  # warm: the body validated once, torch's kernels loaded
        for workers in (1, 2):
            booted = time.perf_counter()
            WorkerPool.acquire(workers, hold=False).wait()
            runtime.map(body(), folder, workers=workers)  # warm the workers the same way
            print(f"{workers} worker(s) booted and warm in {time.perf_counter() - booted:.1f} s", flush=True)
            for repeat in range(args.repeats):
                pair = {}
                for name, count in (("in_process", 0), (f"ray_{workers}", workers)):
                    started = time.perf_counter()
                    result = runtime.map(body(), folder, workers=count)
                    pair[name] = time.perf_counter() - started
                    assert result.iterations == args.items
                    runs[name].append(args.items / pair[name])
                    if count == 1:  # the driver's wall time per item less what the worker spent running it
                        round_trip_ms.append(1e3 * (pair[name] - sum(result.seconds)) / args.items)
                ratios[f"ray_{workers}"].append(pair["in_process"] / pair[f"ray_{workers}"])
                print(f"repeat {repeat + 1}: in-process {args.items / pair['in_process']:.1f} items/s, "
                      f"{workers} worker(s) {args.items / pair[f'ray_{workers}']:.1f} items/s", flush=True)  # fmt: skip
    ray.shutdown()
    rates = {name: summary(values) for name, values in runs.items()}
    # The in-process runs paired with the one-worker runs come first in runs["in_process"].
    overhead_ms = [1e3 * (1 / r1 - 1 / r0) for r0, r1 in zip(runs["in_process"][: args.repeats], runs["ray_1"],
                                                                strict=True)]  # fmt: skip
    results = {
        "items": args.items, "size": args.size, "repeats": args.repeats, "items_per_second": rates,
        "ratio_to_in_process": {name: summary(values) for name, values in ratios.items()},
        "one_worker_minus_in_process_ms_per_item": summary(overhead_ms),
        "ray_round_trip_ms_per_item": summary(round_trip_ms), "cpus": os.cpu_count(),
    }  # fmt: skip
    labels = {"in_process": "in-process loop", "ray_1": "Ray, 1 worker", "ray_2": "Ray, 2 workers"}
    lines = [f"### {args.items} items, ImageBlur radius 8 on {args.size}x{args.size}", "",
             "| run | items/s median | min-max | x in-process (paired) |", "|---|---:|---:|---:|"]  # fmt: skip
    for name, rate in rates.items():
        ratio = results["ratio_to_in_process"].get(name)
        shown = f"{ratio['median']:.2f}x [{ratio['min']:.2f}-{ratio['max']:.2f}]" if ratio else "1"
        lines.append(f"| {labels[name]} | {rate['median']:.1f} | {rate['min']:.1f}-{rate['max']:.1f} | {shown} |")
    trip, over = results["ray_round_trip_ms_per_item"], results["one_worker_minus_in_process_ms_per_item"]
    lines += ["", f"Ray's overhead per item (the driver's time per item less the worker's own run of it, one "
              f"worker): **{trip['median']:.1f} ms** [{trip['min']:.1f}-{trip['max']:.1f}]. One worker's time per "
              f"item less the in-process loop's (paired): {over['median']:+.1f} ms [{over['min']:+.1f} to "
              f"{over['max']:+.1f}]. 2 workers / in-process: "
              f"**{results['ratio_to_in_process']['ray_2']['median']:.2f}x**."]  # fmt: skip
    table = "\n".join(lines)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fanout.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "fanout.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
