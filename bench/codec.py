"""Codec throughput and disk accumulation, side by side in one run.

    python3 tools/dev.py python bench/codec.py [--repeats 7] [--frames 1000] [--quick] [--out DIR]

For each tensor size, every strategy does a full round trip (encode then decode, or write then read) of the same
tensor; MB/s counts the tensor's bytes once per round trip. Prints a table and writes bench/results/codec.json
and codec.md (its tables, for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch
from safetensors.torch import load_file, save_file

from discomfort.serialization import DiskList, DiskStore, SigningKey, decode, dumps, encode, loads

RESULTS = Path(__file__).resolve().parent / "results"


def torch_save_base64(x: torch.Tensor) -> torch.Tensor:
    """What the first Discomfort did: torch.save, then base64 into JSON."""
    buffer = io.BytesIO()
    torch.save(x, buffer)
    text = base64.b64encode(buffer.getvalue()).decode("ascii")
    return torch.load(io.BytesIO(base64.b64decode(text)))


def strategies(folder: Path, key: SigningKey) -> dict:
    store = DiskStore(folder / "store", key=key)
    bare = folder / "bare.safetensors"

    def safetensors_file(x):
        save_file({"value": x}, bare)
        return load_file(bare)["value"]

    def disk_store(x):
        store.put("value", x)
        return store.get("value")

    return {
        "tensor.clone (memcpy bound)": lambda x: x.clone(),
        "torch.save + base64": torch_save_base64,
        "envelope (JSON-able dict)": lambda x: decode(encode(x, key=key), key=key),
        "envelope as JSON text": lambda x: loads(dumps(x, key=key), key=key),
        "safetensors save_file/load_file": safetensors_file,
        "disk store put/get": disk_store,
    }


def measure(function, x: torch.Tensor, repeats: int) -> dict:
    function(x)  # warm up (page cache, allocator)
    seconds = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        back = function(x)
        seconds.append(time.perf_counter() - started)
        assert torch.equal(back, x), "round trip changed the tensor"
    megabytes = x.numel() * x.element_size() / 1e6
    rates = sorted(megabytes / s for s in seconds)
    return {"median_mb_s": statistics.median(rates), "min_mb_s": rates[0], "max_mb_s": rates[-1],
            "median_ms": statistics.median(seconds) * 1e3}  # fmt: skip


def frames_on_disk(count: int, height: int, width: int, key: SigningKey) -> dict:
    """Accumulate `count` frames through a DiskList and watch the process's resident memory."""
    process = psutil.Process()
    frames = DiskList(DiskStore(key=key), "frames")
    gc.collect()
    before = peak = process.memory_info().rss
    started = time.perf_counter()
    for i in range(count):
        frame = torch.full((1, height, width, 3), (i % 255) / 255.0)
        frames.append(frame)
        del frame
        if i % 10 == 0:
            peak = max(peak, process.memory_info().rss)
    seconds = time.perf_counter() - started
    total = count * height * width * 3 * 4
    lazy_peak = before
    for i in range(0, count, max(1, count // 50)):
        assert float(frames[i][0, 0, 0, 0]) == torch.tensor((i % 255) / 255.0).item()
        lazy_peak = max(lazy_peak, process.memory_info().rss)
    frames.store.close()
    return {"frames": count, "frame_shape": [1, height, width, 3], "total_mb": total / 1e6,
            "rss_growth_writing_mb": (peak - before) / 1e6, "rss_growth_reading_lazily_mb": (lazy_peak - before) / 1e6,
            "seconds": seconds, "write_mb_s": total / 1e6 / seconds}  # fmt: skip


def markdown(results: dict) -> str:
    """The codec tables of docs/benchmarks.md."""
    lines = []
    for name, rows in results["codec"].items():
        ratios = rows["ratios"]
        lines += [f"### {name}", "", "| strategy | MB/s median | min-max |", "|---|---:|---:|"]
        lines += [f"| {label} | {row['median_mb_s']:.0f} | {row['min_mb_s']:.0f}-{row['max_mb_s']:.0f} |"
                  for label, row in rows.items() if label != "ratios"]  # fmt: skip
        lines += ["", f"Envelope round trip: **{ratios['envelope_vs_torch_save_base64']:.2f}x** the throughput of "
                  "torch.save + base64 (target >= 2); as JSON text "
                  f"{ratios['text_envelope_vs_torch_save_base64']:.2f}x. "
                  f"Disk store: **{ratios['disk_store_vs_bare_safetensors']:.2f}x** the time of a bare "
                  "`save_file`/`load_file` (target <= 1.5).", ""]  # fmt: skip
    frames = results.get("frames_on_disk")
    if frames:
        count, shape, total = frames["frames"], frames["frame_shape"], frames["total_mb"]
        writing, reading = frames["rss_growth_writing_mb"], frames["rss_growth_reading_lazily_mb"]
        lines.append(f"{count} frames of {shape} float32 ({total:.0f} MB) appended to a `DiskList` one at a time: "
                     f"resident memory grew **{writing:.0f} MB** while writing and {reading:.0f} MB while reading "
                     f"frames back lazily; {frames['write_mb_s']:.0f} MB/s to disk.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--frames", type=int, help="720p frames to accumulate on disk (0 to skip; default 1000)")
    parser.add_argument("--quick", action="store_true", help="100 frames: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.frames is None:
        args.frames = 100 if args.quick else 1000
    torch.set_num_threads(2)
    results: dict = {"machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                                 "cpu": platform.processor() or platform.machine(), "cores": psutil.cpu_count()},
                     "codec": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="discomfort-bench-") as folder:
        key = SigningKey.load_or_create(Path(folder) / "signing.key")
        for shape in ((4, 1024, 1024, 3), (1, 64, 64, 3)):
            x = torch.rand(shape)
            name = "x".join(map(str, shape)) + " float32"
            rows = {
                label: measure(function, x, args.repeats) for label, function in strategies(Path(folder), key).items()
            }
            results["codec"][name] = rows
            print(f"\n{name} ({x.numel() * 4 / 1e6:.2f} MB), round trips, MB/s median [min-max]")
            for label, row in rows.items():
                print(f"  {label:34s} {row['median_mb_s']:9.1f}  [{row['min_mb_s']:.1f}-{row['max_mb_s']:.1f}]")
            envelope = rows["envelope (JSON-able dict)"]["median_mb_s"]
            baseline = rows["torch.save + base64"]["median_mb_s"]
            disk, bare = rows["disk store put/get"]["median_ms"], rows["safetensors save_file/load_file"]["median_ms"]
            ratios = {
                "envelope_vs_torch_save_base64": envelope / baseline,
                "text_envelope_vs_torch_save_base64": rows["envelope as JSON text"]["median_mb_s"] / baseline,
                "disk_store_vs_bare_safetensors": disk / bare,
            }
            results["codec"][name]["ratios"] = ratios
            print(
                f"  envelope is {ratios['envelope_vs_torch_save_base64']:.2f}x torch.save+base64 (target >= 2); "
                f"as JSON text {ratios['text_envelope_vs_torch_save_base64']:.2f}x; "
                f"disk store takes {ratios['disk_store_vs_bare_safetensors']:.2f}x bare safetensors (target <= 1.5)"
            )
        if args.frames:
            frames = frames_on_disk(args.frames, 720, 1280, key)
            results["frames_on_disk"] = frames
            print(f"\n{frames['frames']} frames of 720p float32 ({frames['total_mb']:.0f} MB) accumulated on disk: "
                  f"RSS grew {frames['rss_growth_writing_mb']:.0f} MB writing, "
                  f"{frames['rss_growth_reading_lazily_mb']:.0f} MB reading lazily; "
                  f"{frames['write_mb_s']:.0f} MB/s")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "codec.json").write_text(json.dumps(results, indent=1))
    (args.out / "codec.md").write_text(markdown(results))
    print(f"\nwritten: codec.json and codec.md (the tables of docs/benchmarks.md) in {args.out}")


if __name__ == "__main__":
    main()
