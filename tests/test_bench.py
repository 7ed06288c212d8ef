"""The benchmark harnesses run end to end on a real ComfyUI (tiny sizes), so `tools/dev.py bench` keeps working.

Nothing here asserts a speed: timings live in the benchmarks' own output. What is asserted holds at any size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "bench" / script), *args, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.comfy
def test_loop_bench_measures_every_strategy_and_counts_loader_runs(tmp_path):
    done = bench("loops.py", "--sizes", "4", "--repeats", "2", "--memory-iterations", "6", out=tmp_path)
    results = json.loads((tmp_path / "loops.json").read_text())
    cheap = results["per_iteration"]["cheap N=4"]
    assert set(cheap) == {"a_unrolled", "b_expansion", "c_discomfort", "d_http", "e_bare", "f_bare_async", "t_torch"}
    assert set(results["per_iteration"]["heavy N=4"]) == set(cheap) - {"d_http"}  # HTTP only on the cheap body
    assert all(0 < row["min"] <= row["median"] <= row["max"] for row in cheap.values())
    assert results["loader_runs_over_20_iterations"]["c_discomfort"] == 1  # cached by the loop's private executor
    for run in results["memory"].values():
        assert run["iterations"] == 6 and len(run["rss_mb"]) == 6 and len(run["ms_per_iteration"]) == 5
    assert (tmp_path / "loops.png").stat().st_size > 10_000
    assert "ratio (median over repeats" in done.stdout


@pytest.mark.comfy
def test_codec_bench_round_trips_every_strategy(tmp_path):
    bench("codec.py", "--repeats", "1", "--frames", "3", out=tmp_path)
    results = json.loads((tmp_path / "codec.json").read_text())
    assert results["frames_on_disk"]["frames"] == 3
    for rows in results["codec"].values():
        assert {"envelope (JSON-able dict)", "torch.save + base64", "disk store put/get"} <= set(rows)
        assert all(value > 0 for value in rows["ratios"].values())


@pytest.mark.comfy
def test_prepare_bench_covers_every_depth_and_loop_count_and_both_cache_settings(tmp_path):
    done = bench("prepare.py", "--quick", out=tmp_path)
    results = json.loads((tmp_path / "prepare.json").read_text())
    assert [f"depth {d}" for d in range(1, 9)] + ["1 loops", "10 loops", "100 loops", "1000 loops"] == list(
        results["preparation"]
    )
    rows = results["nested"]["rows"]
    # Without the caches the inner loops compile and validate on every iteration of the loops around them.
    assert rows["caches off"]["ms compiling and validating"] > rows["caches on"]["ms compiling and validating"]
    assert "per inner loop run" in done.stdout
