"""Stores: memory by reference, disk as raw safetensors, spilling past a budget; bounded memory for frames."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from discomfort.serialization import DiskList, DiskStore, MemoryStore, SigningKey, SpillingList, make_list
from discomfort.serialization.stores import make_lists


@pytest.fixture
def key(tmp_path):
    return SigningKey.load_or_create(tmp_path / "signing.key")


def test_memory_store_keeps_references():
    store, value = MemoryStore(), torch.ones(3)
    store.put("image", value)
    assert store.get("image") is value and "image" in store and store.keys() == ["image"]
    with pytest.raises(KeyError, match="'mask'"):
        store.get("mask")


def test_disk_store_writes_raw_safetensors_and_json(tmp_path, key):
    store = DiskStore(tmp_path / "run", key=key)
    latent = {"samples": torch.randn(1, 4, 8, 8), "batch_index": [2]}
    store.put("latent/日本", latent)
    store.put("image", torch.rand(1, 4, 4, 3))
    store.put("seed", 42)
    files = sorted(path.name for path in (tmp_path / "run").iterdir())
    assert not [name for name in files if name.endswith(".tmp")]
    (tensor_file,) = [name for name in files if name.startswith("latent") and name.endswith(".safetensors")]
    assert torch.equal(load_file(tmp_path / "run" / tensor_file)["t0"], latent["samples"])  # no base64 on disk
    (image_file,) = [name for name in files if name.startswith("image")]  # a lone tensor is one plain file
    assert load_file(tmp_path / "run" / image_file)["value"].shape == (1, 4, 4, 3)
    back = store.get("latent/日本")
    assert torch.equal(back["samples"], latent["samples"]) and back["batch_index"] == [2]
    assert store.get("seed") == 42
    assert sorted(store.keys()) == ["image", "latent/日本", "seed"]
    store.delete("seed")
    assert "seed" not in store


def test_disk_store_signs_its_pickles(tmp_path, key):
    store = DiskStore(tmp_path / "run", key=key)
    store.put("opaque", {"callable": len})
    assert store.get("opaque")["callable"] is len
    (pickle,) = (tmp_path / "run").glob("*.pkl")
    pickle.write_bytes(pickle.read_bytes() + b"\x00")
    from discomfort.errors import UntrustedPickleError

    with pytest.raises(UntrustedPickleError, match="altered"):
        store.get("opaque")


def test_temporary_store_is_removed_on_success_and_kept_on_failure(key):
    done, failed = DiskStore(key=key), DiskStore(key=key)
    for store in (done, failed):
        store.put("x", torch.ones(2))
    done.close(success=True)
    failed.close(success=False)
    assert not done.directory.exists()
    assert failed.directory.exists() and torch.equal(failed.get("x"), torch.ones(2))
    DiskStore(failed.directory, persistent=True).close(success=True)
    assert failed.directory.exists()  # a folder given by the caller is theirs to keep


def test_a_failed_write_leaves_no_partial_value(tmp_path, key, monkeypatch):
    store = DiskStore(tmp_path / "run", key=key)
    import discomfort.serialization.stores as stores

    def full_disk(tensors, path, metadata=None):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stores, "_save_tensors", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.put("image", torch.ones(4))
    assert "image" not in store and list((tmp_path / "run").iterdir()) == []


def test_spilling_list_moves_to_disk_past_its_budget(key):
    items = SpillingList(DiskList(DiskStore(key=key)), budget_bytes=3 * 4 * 16)
    for i in range(6):
        items.append(torch.full((16,), float(i)))
    assert len(items.memory) == 3 and len(items.disk) == 3
    assert [float(items[i][0]) for i in range(6)] == [0, 1, 2, 3, 4, 5]
    assert make_list("ram", None, "x") == []


def test_one_budget_holds_every_accumulated_uid_together(key):
    lists = make_lists("auto", DiskStore(key=key), ["image", "mask"], budget_bytes=4 * 4 * 16)
    for i in range(3):
        lists["image"].append(torch.full((16,), float(i)))
        lists["mask"].append(torch.full((16,), -float(i)))
    # 4 items fit, taken in turn: image 0, mask 0, image 1, mask 1; each list spills from its first misfit on.
    assert [len(items.memory) for items in lists.values()] == [2, 2]
    assert [len(items.disk) for items in lists.values()] == [1, 1]
    assert [float(item[0]) for item in lists["mask"]] == [0, -1, -2]
    nothing = make_lists("auto", DiskStore(key=key), ["image"], budget_bytes=0)["image"]
    nothing.append(torch.ones(1))
    assert len(nothing.disk) == 1 and not nothing.memory


def test_disk_list_reads_lazily_and_as_one_batch(key):
    frames = DiskList(DiskStore(key=key), "frames")
    expected = [torch.rand(2, 8, 8, 3) for _ in range(5)]
    for frame in expected:
        frames.append(frame)
    assert torch.equal(frames[3], expected[3]) and torch.equal(frames[-1], expected[-1])
    assert torch.equal(frames.as_batch(), torch.cat(expected))
    frames.truncate(2)
    assert len(frames) == 2 and torch.equal(frames.as_batch(), torch.cat(expected[:2]))


def test_accumulating_frames_on_disk_keeps_memory_bounded(key):
    # 300 frames of 256x256 RGB float32: 236 MB in all; the full 1000 x 720p case is in bench/.
    frames = DiskList(DiskStore(key=key), "frames")
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    peak = before
    for i in range(300):
        frame = torch.full((1, 256, 256, 3), i / 300.0)
        frames.append(frame)
        del frame
        peak = max(peak, process.memory_info().rss)
    total = 300 * 256 * 256 * 3 * 4
    assert peak - before < total / 4, f"RSS grew {(peak - before) / 1e6:.0f} MB while writing {total / 1e6:.0f} MB"
    for i in (0, 150, 299):
        assert float(frames[i][0, 0, 0, 0]) == pytest.approx(i / 300.0)
    record = frames.store.record("frames/299")
    assert record["meta"]["shape"] == [1, 256, 256, 3]
    frames.store.close()


def test_a_record_cannot_name_the_files_it_is_read_from(tmp_path, key):
    """A store's files can be replaced by others (a checkpoint under output/): names come from the key only."""
    import json

    secret = tmp_path / "secret.safetensors"
    store = DiskStore(tmp_path / "run", key=key)
    store.put("latent", {"samples": torch.ones(2), "opaque": len})
    (record_file,) = (tmp_path / "run").glob("latent-*.json")
    record = json.loads(record_file.read_text())
    secret.write_bytes((tmp_path / "run" / record["tensors"]).read_bytes())
    record.update(tensors="../secret.safetensors", pickles={"../../p0": "../../elsewhere.pkl"})
    record_file.write_text(json.dumps(record))
    from discomfort.errors import SerializationError

    with pytest.raises(SerializationError, match=r"names a pickle '../../p0', which the codec never writes"):
        store.get("latent")
    record["pickles"] = {"p0": "../../elsewhere.pkl"}
    record_file.write_text(json.dumps(record))
    secret.unlink()  # were the record's name used, this read would fail
    back = store.get("latent")
    assert torch.equal(back["samples"], torch.ones(2)) and back["opaque"] is len


def test_failed_runs_are_kept_within_a_budget_the_oldest_removed_first(tmp_path):
    from discomfort.serialization.stores import prune

    for stamp, size in (("20260101-000000", 400), ("20260102-000000", 300), ("20260103-000000", 200)):
        (tmp_path / f"{stamp}-run").mkdir()
        (tmp_path / f"{stamp}-run" / "x.safetensors").write_bytes(b"x" * size)
    newest = tmp_path / "20260103-000000-run"
    assert prune(tmp_path, 600, keep=newest) == [tmp_path / "20260101-000000-run"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["20260102-000000-run", "20260103-000000-run"]
    assert prune(tmp_path, 100, keep=newest) == [tmp_path / "20260102-000000-run"]
    assert [path.name for path in tmp_path.iterdir()] == ["20260103-000000-run"]  # the newest always stays


@pytest.mark.comfy
def test_inside_comfyui_a_run_writes_under_its_temp_folder_and_a_failed_one_is_kept_in_user(comfy, key):
    import folder_paths

    store = DiskStore(key=key)
    assert store.directory.parent == Path(folder_paths.get_temp_directory()) / "discomfort"
    store.put("x", torch.ones(2))
    kept = store.close(success=False)
    assert (
        kept == store.directory and kept.parent == Path(folder_paths.get_user_directory()) / "discomfort" / "unfinished"
    )
    assert torch.equal(DiskStore(kept, key=key).get("x"), torch.ones(2))
    empty = DiskStore(key=key)
    assert empty.close(success=False) is None and not empty.directory.exists()  # nothing to keep
