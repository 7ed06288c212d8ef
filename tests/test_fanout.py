"""Independent iterations fanned out over Ray workers, each an embedded ComfyUI (executor/fanout.py,
executor/ray_workers.py, Runtime.map, `run --workers`, the folder loop's workers setting).

The bookkeeping (queue, order, ledger) has plain unit tests. The rest runs on a real Ray: a local one
(ray.init(num_cpus=2)) and a simulated two-node cluster (ray.cluster_utils.Cluster), one after the other, each
shared by its class's tests, with one pool of two workers (a worker's ComfyUI boot costs seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

# Ray on loopback only, and no usage report: read when ray is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np
import pytest
from graphs import port
from PIL import Image

from discomfort.errors import LoopError, SettingsError
from discomfort.executor.fanout import (
    IMAGE_FILE,
    InOrder,
    Ledger,
    Schedule,
    check_independent,
    check_items,
    run_fingerprint,
)
from discomfort.executor.plan import plan_workflow
from discomfort.serialization.checkpoint import CheckpointError, CheckpointLocked, CheckpointMismatch

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example_workflows" / "folder_one_at_a_time.json"
ITEMS = 40
OBJECT_STORE = 256 * 1024**2  # /dev/shm is shared with everyone on the machine


# --- the bookkeeping, without Ray or ComfyUI -------------------------------------------------------------------


def test_a_lost_item_goes_first_again_until_its_attempts_are_used_up():
    schedule = Schedule(range(4), max_attempts=2)
    assert [schedule.take(), schedule.take()] == [0, 1]
    assert schedule.lost(1)  # its worker died: it runs next, before 2
    assert schedule.take() == 1
    assert not schedule.lost(1), "a third run of an item that took two workers down"
    assert [schedule.take(), schedule.take()] == [2, 3] and not schedule


def test_results_are_released_in_item_order():
    order = InOrder(range(4))
    assert order.add(2, "c") == []
    assert order.add(0, "a") == [(0, "a")]
    assert order.add(1, "b") == [(1, "b"), (2, "c")]
    with pytest.raises(ValueError, match="item 1 is not awaited"):
        order.add(1, "again")
    assert order.add(3, "d") == [(3, "d")] and not len(order)


def test_the_ledger_resumes_finished_items_and_ignores_a_torn_line(tmp_path):
    ledger = Ledger(tmp_path / "run", "fp", total=5)
    assert ledger.open(resume=True) == {}
    ledger.finish(3, {"image": [1, 2]}, {"seconds": 0.5})
    ledger.finish(0, {}, {"skipped": "bad file"})
    ledger.close()
    with open(tmp_path / "run" / "finished.jsonl", "a") as log:
        log.write('{"item": 4, "sec')  # the driver died mid-line
    again = Ledger(tmp_path / "run", "fp", total=5)
    assert again.open(resume=True) == {3: {"seconds": 0.5}, 0: {"skipped": "bad file"}}
    assert again.value("image", 3) == [1, 2]
    again.close()
    with pytest.raises(CheckpointMismatch, match="different run"):
        Ledger(tmp_path / "run", "other", total=5).open(resume=True)
    fresh = Ledger(tmp_path / "run", "other", total=5)
    assert fresh.open(resume=False) == {}  # without resume, the folder starts over
    fresh.close()


def test_the_ledger_takes_its_folder_as_a_checkpoint_does(tmp_path):
    others = tmp_path / "photos"
    others.mkdir()
    (others / "keep.png").write_bytes(b"mine")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        Ledger(others, "fp", total=2).open(resume=False)
    assert (others / "keep.png").read_bytes() == b"mine"  # not emptied to make room
    first = Ledger(tmp_path / "run", "fp", total=2, holder="loop 7")
    first.open(resume=False)
    with pytest.raises(CheckpointLocked, match="in use by loop 7"):
        Ledger(tmp_path / "run", "fp", total=2).open(resume=True)
    first.finish(1, {}, {"seconds": 0.1})
    first.close()
    (tmp_path / "run" / "elsewhere").symlink_to(others, target_is_directory=True)
    with pytest.raises(CheckpointError, match="holds a link"):
        Ledger(tmp_path / "run", "fp", total=2).open(resume=False)
    assert (others / "keep.png").exists()


@pytest.mark.parametrize("edit", ["line", "header"])
def test_an_edited_ledger_is_refused_not_resumed(tmp_path, edit):
    ledger = Ledger(tmp_path / "run", "fp", total=3)
    ledger.open(resume=False)
    ledger.finish(0, {}, {"seconds": 0.1})
    ledger.close()
    if edit == "line":  # items marked finished that never ran
        (tmp_path / "run" / "finished.jsonl").write_text('{"item": 1, "seconds": 0.1}\n{"item": 2}\n')
        where = "finished.jsonl, line 1"
    else:  # another run's items passed off as this one's
        header = json.loads((tmp_path / "run" / "fanout.json").read_text())
        (tmp_path / "run" / "fanout.json").write_text(json.dumps({**header, "fingerprint": "other"}))
        where = "fanout.json"
    again = Ledger(tmp_path / "run", "other" if edit == "header" else "fp", total=3)
    with pytest.raises(CheckpointError, match=f"{where} was edited"):
        again.open(resume=True)
    assert again.open(resume=False) == {}  # the folder is not held by the refused resume
    again.close()


def test_a_ledger_fingerprint_counts_what_values_hold():
    import torch

    plan = types.SimpleNamespace(fingerprint="body")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    changed = {"samples": torch.ones(1, 4, 8, 8)}
    same = run_fingerprint(plan, [], {"latent": latent}, [{"seed": 1}])
    assert same == run_fingerprint(plan, [], {"latent": {"samples": torch.zeros(1, 4, 8, 8)}}, [{"seed": 1}])
    assert same != run_fingerprint(plan, [], {"latent": changed}, [{"seed": 1}])  # a LATENT by its tensors
    assert same != run_fingerprint(plan, [], {"latent": latent}, [{"seed": 2}])


def carried_body() -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": port("image", ["1", 0]),
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": port("image", ["3", 0]),
        "5": port("seed"),
        "6": {"class_type": "DiscomfortTestCapture", "inputs": {"value": ["5", 0], "label": "seed"}},
    }


def test_a_loop_that_carries_a_value_is_refused_naming_the_uid():
    with pytest.raises(SettingsError, match=r"uid\(s\) image leave the body .* and enter it again"):
        check_independent(plan_workflow(carried_body(), "carried.json"))


def test_items_name_only_uids_the_body_takes_and_all_the_same_ones():
    plan = plan_workflow({key: node for key, node in carried_body().items() if key in ("5", "6")}, "seeds.json")
    assert check_items(plan, [{"seed": 1}, {"seed": 2}], {}) == [{"seed": 1}, {"seed": 2}]
    with pytest.raises(SettingsError, match=r"item 1: no entry port in body 'seeds.json' takes uid sed"):
        check_items(plan, [{"seed": 1}, {"sed": 2}], {})
    with pytest.raises(SettingsError, match="item 1 gives uids none; item 0 gives seed"):
        check_items(plan, [{"seed": 1}, {}], {})
    with pytest.raises(SettingsError, match="uid seed is given both by the items and as an input"):
        check_items(plan, [{"seed": 1}], {"seed": 3})
    # A folder's file gives what the body takes of image, mask, filename and index, like the folder loop.
    assert check_items(plan, [{IMAGE_FILE: "a.png", "filename": "a.png", "index": 0}], {}) == [{IMAGE_FILE: "a.png"}]


def test_without_ray_the_error_names_the_extra_to_install(monkeypatch):
    from discomfort.errors import DiscomfortError
    from discomfort.executor.ray_workers import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    with pytest.raises(DiscomfortError, match=r"needs Ray, which is not installed: pip install 'discomfort\[ray\]'"):
        require_ray()


# --- on a real Ray ----------------------------------------------------------------------------------------------


def make_folder(folder: Path, count: int = ITEMS) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"a{k}.png" for k in range(count)]
    for k, name in enumerate(names):
        pixels = np.random.default_rng(k).integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return names


def folder_body(extra: dict | None = None, stall: float = 0.0) -> dict:
    """The folder example's body (its ports, the inversion, the save by name) as an API workflow."""
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    prompt = ui_to_api(json.loads(EXAMPLE.read_text()), LiveNodeDefs())
    body = {key: node for key, node in prompt.items() if node["class_type"] != "DiscomfortFolderLoop"}
    if stall:  # the image waits a moment before it is inverted, so a worker is surely busy when it is killed
        invert = next(key for key, node in body.items() if node["class_type"] == "ImageInvert")
        body["90"] = {"class_type": "DiscomfortTestStall",
                      "inputs": {"value": body[invert]["inputs"]["image"], "seconds": stall, "log": ""}}  # fmt: skip
        body[invert]["inputs"]["image"] = ["90", 0]
    return {**body, **(extra or {})}


def saved(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def clear(folder: Path) -> None:
    for path in folder.glob("*.png"):
        path.unlink()


@pytest.fixture(scope="class")
def images(comfy):
    folder = Path(comfy.output_directory).parent / "input" / "fanout"
    return folder, make_folder(folder)


@pytest.fixture(scope="class")
def runtime(comfy):
    import discomfort

    with discomfort.Runtime() as rt:
        yield rt


@pytest.fixture(scope="class")
def local_ray(comfy):
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=OBJECT_STORE,
             log_to_driver=False, _node_ip_address="127.0.0.1")  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.mark.comfy
@pytest.mark.usefixtures("local_ray")
class TestLocalRay:
    def test_a_folder_through_two_workers_saves_what_the_in_process_run_saves(self, comfy, images, runtime):
        folder, names = images
        output = Path(comfy.output_directory) / "folder_example"
        clear(output)
        local = runtime.map(folder_body(), folder, workers=0)
        expected = saved(output)
        assert sorted(expected) == sorted(names) and local.iterations == ITEMS
        clear(output)
        seen = []
        result = runtime.map(folder_body(), folder, workers=2, progress=lambda done, total, _: seen.append(done))
        assert saved(output) == expected, "the workers' files differ from the in-process run's"
        assert [image["filename"] for image in result.images] == names, "results not handed back in item order"
        assert seen == list(range(1, ITEMS + 1))

    def test_the_folder_loop_node_fans_out_with_its_workers_setting(self, comfy, images, runtime):
        from discomfort.executor.node_defs import LiveNodeDefs
        from discomfort.workflow.convert import ui_to_api

        output = Path(comfy.output_directory) / "folder_example"
        prompt = ui_to_api(json.loads(EXAMPLE.read_text()), LiveNodeDefs())
        loop_id = next(key for key, node in prompt.items() if node["class_type"] == "DiscomfortFolderLoop")
        prompt[loop_id]["inputs"]["folder"] = "fanout"
        clear(output)
        comfy.run(prompt)
        expected = saved(output)
        clear(output)
        prompt[loop_id]["inputs"]["workers"] = 2  # the same two workers as Runtime.map's: one pool per process
        run = comfy.run(prompt)
        assert saved(output) == expected and len(expected) == ITEMS
        assert len(run.images()) == ITEMS, "the loop node shows every item's saved image"

    def test_a_killed_worker_loses_only_its_item_which_runs_again_on_another(self, comfy, images, runtime):
        import ray

        from discomfort.executor.ray_workers import WorkerPool

        folder, names = images
        output = Path(comfy.output_directory) / "folder_example"
        clear(output)
        pool = WorkerPool.acquire(2, hold=False)
        lost_before, killed = pool.lost, []

        def kill_one_mid_item() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                first = pool.running()
                time.sleep(0.05)
                # Running for 50 ms already of its 250: killing its worker now surely interrupts it.
                steady = [(i, w) for i, w in pool.running().items() if first.get(i) is w and i >= 5]
                if steady:
                    ray.kill(steady[0][1], no_restart=False)
                    killed.append(steady[0][0])

        killer = threading.Thread(target=kill_one_mid_item)
        killer.start()
        result = runtime.map(folder_body(stall=0.25), folder, workers=2)
        killer.join()
        assert killed, "no worker was killed"
        assert pool.lost > lost_before, f"item {killed[0]} was not lost with its worker"
        assert [image["filename"] for image in result.images] == names, "every item once, in order"
        assert sorted(saved(output)) == sorted(names)

    def test_an_interrupt_stops_every_worker_at_once_keeping_finished_items(self, comfy, images, runtime, tmp_path):
        import nodes
        from discomfort.executor import compat

        folder, _names = images
        interrupted = []

        def interrupt_at_five(done: int, _total: int, _values: dict) -> None:
            if done == 5:
                interrupted.append(time.perf_counter())
                nodes.interrupt_processing(True)  # what ComfyUI's Cancel, or Ctrl-C in the CLI, does

        try:
            with pytest.raises(BaseException) as stopped:  # ComfyUI's own interrupt exception
                runtime.map(folder_body(stall=1.0), folder, workers=2, checkpoint=tmp_path / "run",
                            progress=interrupt_at_five)  # fmt: skip
        finally:
            nodes.interrupt_processing(False)
        assert compat.is_interrupt(stopped.value), stopped.value
        # Uninterrupted, the 35 items left would take 17 s more; stopped, the workers drop theirs at once.
        assert time.perf_counter() - interrupted[0] < 8, "the workers' items were not interrupted"
        finished = len((tmp_path / "run" / "finished.jsonl").read_text().splitlines())
        assert 5 <= finished <= 7, f"{finished} items finished: in flight, at most one more per worker"

    def test_an_item_that_fails_follows_on_error(self, comfy, images, runtime):
        folder, _names = images
        body = folder_body({"91": port("index")})
        invert = next(key for key, node in body.items() if node["class_type"] == "ImageInvert")
        body["92"] = {"class_type": "DiscomfortTestFailAt", "inputs": {"value": body[invert]["inputs"]["image"],
                                                                        "index": ["91", 0], "fail_at": 3}}  # fmt: skip
        body[invert]["inputs"]["image"] = ["92", 0]
        result = runtime.map(body, folder, workers=2, on_error="skip")
        assert result.iterations == ITEMS and [item for item, _ in result.skipped] == [4]
        assert "planted failure at index 3" in result.skipped[0][1]
        assert len(result.images) == ITEMS - 1
        with pytest.raises(LoopError, match=r"item 4/40 \(a3\.png\): node 92 \(DiscomfortTestFailAt\) failed") as error:
            runtime.map(body, folder, workers=2)
        assert error.value.iteration == 4 and error.value.node_id == "92"

    def test_a_rerun_with_the_checkpoint_does_only_the_unfinished_items(self, comfy, images, runtime, tmp_path):
        folder, names = images
        output = Path(comfy.output_directory) / "folder_example"
        exit_port = {"93": port("inverted", ["3", 0])}  # the inverted image leaves the body, to accumulate it
        body = folder_body(exit_port)
        expected = runtime.map(body, folder, workers=0, accumulate=["inverted"]).accumulated["inverted"]

        def driver_dies(done: int, _total: int, _values: dict) -> None:
            if done == 12:
                raise RuntimeError("the driver died")

        with pytest.raises(RuntimeError, match="the driver died"):
            runtime.map(body, folder, workers=2, accumulate=["inverted"], checkpoint=tmp_path / "run",
                        progress=driver_dies)  # fmt: skip
        lines = (tmp_path / "run" / "finished.jsonl").read_text().splitlines()
        finished = {names[json.loads(line)["item"]] for line in lines}
        assert len(finished) >= 12
        clear(output)
        result = runtime.map(body, folder, workers=2, accumulate=["inverted"], checkpoint=tmp_path / "run",
                             resume=True)  # fmt: skip
        assert sorted(saved(output)) == sorted(set(names) - finished), "the rerun redid finished items"
        assert result.iterations == ITEMS
        assert result.accumulated["inverted"].shape == expected.shape
        assert bool((result.accumulated["inverted"] == expected).all()), "accumulated values out of order"


@pytest.fixture(scope="class")
def two_nodes(comfy):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": OBJECT_STORE})  # fmt: skip
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.comfy
class TestTwoNodeCluster:
    def test_a_folder_spread_over_two_nodes_saves_what_the_in_process_run_saves(self, comfy, images, two_nodes):
        import discomfort
        from discomfort.executor.ray_workers import WorkerPool

        folder, names = images
        output = Path(comfy.output_directory) / "folder_example"
        with discomfort.Runtime() as runtime:
            clear(output)
            runtime.map(folder_body(), folder, workers=0)
            expected = saved(output)
            clear(output)
            where = WorkerPool.acquire(2, hold=False).wait()  # both up, so both take items
            result = runtime.map(folder_body(), folder, workers=2)
        assert len({info["node"] for info in where.values()}) == 2, f"the two workers ran on one node: {where}"
        assert saved(output) == expected and [image["filename"] for image in result.images] == names

    def test_the_cli_joins_the_cluster_with_ray_and_workers(self, comfy, images, two_nodes, tmp_path):
        folder, names = images
        (tmp_path / "body.json").write_text(json.dumps(folder_body()))
        done = subprocess.run([sys.executable, "-m", "discomfort", "run", str(tmp_path / "body.json"), "--folder",
                               str(folder), "--workers", "2", "--ray", two_nodes.address, "-o", str(tmp_path / "out")],
                              capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert sorted(saved(tmp_path / "out" / "folder_example")) == sorted(names)
        assert f"{ITEMS}/{ITEMS}" in done.stderr, "no progress bar over the items"
