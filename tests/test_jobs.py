"""The jobs users loop for: a folder one image at a time, iterative refinement until it settles."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from graphs import empty_image, loop, loop_output, node, port
from PIL import Image

pytestmark = pytest.mark.comfy


def capture(value, label):
    return node("DiscomfortTestCapture", value=value, label=label)


@pytest.fixture
def photos(comfy, request):
    """A folder in ComfyUI's input folder: img1, img2, img10 (natural order), one with alpha, one rotated by EXIF."""
    import folder_paths

    folder = folder_paths.get_input_directory() + f"/{request.node.name}"
    shutil.rmtree(folder, ignore_errors=True)
    from pathlib import Path

    path = Path(folder)
    path.mkdir(parents=True)
    Image.new("RGB", (8, 6), (10, 20, 30)).save(path / "img1.png")
    Image.new("RGBA", (8, 6), (200, 100, 50, 0)).save(path / "img10.png")  # fully transparent
    rotated = Image.new("RGB", (6, 8), (90, 90, 90))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated.save(path / "img2.jpg", exif=exif)
    (path / "notes.txt").write_text("not an image")
    return path


def test_folder_loader_single_and_batch(comfy, captured, photos):
    def load(mode, index=0, policy="error", pattern_filter="images"):
        prompt = {"1": node("DiscomfortFolderImageLoader", folder=photos.name, filter=pattern_filter, custom_pattern="",
                            mode=mode, index=index, size_policy=policy, unreadable="error"),
                  "2": capture(["1", 0], "image"), "3": capture(["1", 1], "mask"), "4": capture(["1", 2], "name"),
                  "5": capture(["1", 4], "count")}  # fmt: skip
        comfy.run(prompt)
        return {key: captured.pop(key)[-1] for key in ("image", "mask", "name", "count")}

    second = load("single", 1)
    assert second["name"] == "img2.jpg" and second["count"] == 3
    assert second["image"].shape == (1, 6, 8, 3)  # EXIF orientation applied: stored 6 wide, shown 8 wide
    third = load("single", 2)
    assert third["name"] == "img10.png" and float(third["mask"].min()) == 1.0  # transparent: masked
    assert float(load("single", 0)["mask"].max()) == 0.0
    batch = load("batch", policy="error")
    assert batch["image"].shape == (3, 6, 8, 3) and batch["name"] == "img1.png, img2.jpg, img10.png"
    assert load("single", 0, pattern_filter="png")["count"] == 2
    with pytest.raises(Exception, match="index 5 is past the last image"):
        load("single", 5)


def test_folder_loader_refuses_folders_outside_comfyui(comfy, tmp_path):
    prompt = {"1": node("DiscomfortFolderImageLoader", folder=str(tmp_path), filter="images", custom_pattern="",
                        mode="single", index=0, size_policy="error", unreadable="error"),
              "2": capture(["1", 0], "x")}  # fmt: skip
    with pytest.raises(Exception, match="outside ComfyUI's input and output folders"):
        comfy.run(prompt)


def folder_loop(folder: str, start_index=0, on_error="stop") -> dict:
    return {
        "1": port("image"), "2": port("filename"),
        "3": node("ImageInvert", image=["1", 0]),
        "4": node("DiscomfortSaveImage", images=["3", 0], filename=["2", 0], subfolder=f"{folder}-inverted"),
        "10": {"class_type": "DiscomfortFolderLoop", "inputs": {"folder": folder, "filter": "images",
               "custom_pattern": "", "body": "loop", "start_index": start_index, "on_error": on_error}},
        "11": capture(["10", 0], "status"), "12": capture(["10", 3], "complete"),
    }  # fmt: skip


def test_folder_loop_saves_one_output_per_input_by_name_and_resumes(comfy, captured, photos):
    comfy.run(folder_loop(photos.name, start_index=1))
    out = comfy.output_directory / f"{photos.name}-inverted"
    assert sorted(p.name for p in out.iterdir()) == ["img10.png", "img2.png"]
    status = json.loads(captured["status"][-1])
    assert status == {"processed": 2, "skipped": [], "total": 3, "start": 1, "next_index": 3,
                      "cursor": "start_index 1"} and captured["complete"] == [True]  # fmt: skip
    comfy.run(folder_loop(photos.name))
    assert sorted(p.name for p in out.iterdir()) == ["img1.png", "img10.png", "img2.png"]
    inverted = np.asarray(Image.open(out / "img1.png"))
    assert all(abs(int(got) - want) <= 1 for got, want in zip(inverted[0, 0], (245, 235, 225), strict=True))


def test_folder_loop_skips_or_stops_on_a_bad_file(comfy, captured, photos):
    (photos / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(Exception, match=r"iteration 3/4: img3.png: not a readable image"):
        comfy.run(folder_loop(photos.name))
    comfy.run(folder_loop(photos.name, on_error="skip"))
    status = json.loads(captured["status"][-1])
    assert status["processed"] == 3 and [s["file"] for s in status["skipped"]] == ["img3.png"]
    assert captured["complete"] == [True]


def test_refinement_stops_when_the_change_settles(comfy, captured):
    gradient = node("ImageCompositeMasked", destination=["20", 0], source=["21", 0], x=4, y=4, resize_source=False)
    prompt = {
        "20": empty_image(0x000000, 16), "21": empty_image(0xFFFFFF, 8), "22": gradient,
        "1": port("image", ["22", 0]),
        "2": node("ImageBlur", image=["1", 0], blur_radius=1, sigma=1.0),
        "3": port("image", ["2", 0]),
        "4": node("DiscomfortImageDifference", image_a=["1", 0], image_b=["2", 0], threshold=0.01),
        "5": port("settled", ["4", 1]),
        "6": port("change", ["4", 0]),
        "10": loop(iterations=200, uids="image", accumulate="change", stop_when="settled"),
        "11": capture(loop_output("10", "iterations"), "iterations"),
        "12": capture(loop_output("10", "accumulated_1"), "changes"), "13": capture(["10", 0], "final"),
    }  # fmt: skip
    comfy.run(prompt)
    (iterations,), (changes,) = captured["iterations"], captured["changes"]
    assert 1 < iterations < 200 and len(changes) == iterations
    assert changes[-1] < 0.01 and all(change >= 0.01 for change in changes[:-1])
    # The same blur applied that many times directly gives the same image.
    chain = {"20": empty_image(0x000000, 16), "21": empty_image(0xFFFFFF, 8), "22": gradient}
    previous = ["22", 0]
    for i in range(iterations):
        chain[f"b{i}"] = node("ImageBlur", image=previous, blur_radius=1, sigma=1.0)
        previous = [f"b{i}", 0]
    chain["out"] = capture(previous, "direct")
    comfy.run(chain)
    assert torch.equal(captured["final"][0], captured["direct"][0])


def test_long_video_in_chunks_with_overlapping_seams(comfy, captured, request):
    chunks, length, overlap = 4, 6, 2
    prefix = f"video/{request.node.name}"
    chunks_out = loop_output("10", "accumulated_1")
    prompt = {
        "20": node("EmptyImage", width=8, height=8, batch_size=overlap, color=0x010101),  # the first context
        "1": port("tail", ["20", 0]),
        "2": port("iteration"),
        "3": node("DiscomfortTestAdd", a=["2", 0], b=1),
        "4": node("EmptyImage", width=8, height=8, batch_size=length - overlap, color=["3", 0]),  # new frames
        "5": node("ImageBatch", image1=["1", 0], image2=["4", 0]),  # a chunk: context, then new frames
        "6": port("chunk", ["5", 0]),
        "7": node("DiscomfortLastFrames", images=["5", 0], count=overlap),
        "8": port("tail", ["7", 0]),
        "10": {**loop(iterations=chunks, uids="tail", accumulate="chunk")},
        "11": node("DiscomfortJoinChunks", chunks=chunks_out, chunk_length=length, overlap=overlap),
        "12": capture(["11", 0], "video"), "13": capture(chunks_out, "chunks"),
        "14": node("CreateVideo", images=["11", 0], fps=8.0),
        "15": node("SaveVideo", video=["14", 0], filename_prefix=prefix, format="mp4", codec="h264"),
    }  # fmt: skip
    prompt["10"]["inputs"]["storage"] = "disk"  # frames wait on disk, not in RAM
    comfy.run(prompt)
    (raw,), (video,) = captured["chunks"], captured["video"]
    assert raw.shape[0] == chunks * length
    assert video.shape[0] == chunks * length - (chunks - 1) * overlap
    for c in range(1, chunks):  # each seam: the chunk starts with the previous chunk's last frames
        assert torch.equal(raw[c * length : c * length + overlap], raw[c * length - overlap : c * length])
    blue = [round(float(frame[0, 0, 2]) * 255) for frame in video]
    assert blue == [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]
    import av

    (file,) = (comfy.output_directory / "video").glob(f"{request.node.name}_*.mp4")
    with av.open(str(file)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(blue)


def loader(folder, mode="batch", policy="error", unreadable="error", pattern_filter="images", pattern=""):
    load = node("DiscomfortFolderImageLoader", folder=folder, filter=pattern_filter, custom_pattern=pattern,
                mode=mode, index=0, size_policy=policy, unreadable=unreadable)  # fmt: skip
    return {"1": load, "2": capture(["1", 0], "image"), "3": capture(["1", 1], "mask"), "4": capture(["1", 4], "count")}


def test_folder_loader_size_policies_unreadable_files_and_empty_folders(comfy, captured, photos):
    Image.new("RGB", (4, 4), (255, 0, 0)).save(photos / "small.png")
    with pytest.raises(Exception, match=r"images differ in size \(img1.png \(6, 8\).*small.png \(4, 4\)"):
        comfy.run(loader(photos.name))
    comfy.run(loader(photos.name, policy="resize"))
    assert captured["image"][-1].shape == (4, 6, 8, 3)
    comfy.run(loader(photos.name, policy="pad"))
    padded, mask = captured["image"][-1], captured["mask"][-1]
    assert padded.shape == (4, 6, 8, 3) and float(mask[3, 5, 7]) == 1.0 and float(mask[3, 0, 0]) == 0.0
    (photos / "broken.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match=r"broken\.png: not a readable image"):
        comfy.run(loader(photos.name, policy="pad"))
    comfy.run(loader(photos.name, policy="pad", unreadable="skip"))
    assert captured["count"][-1] == 4
    with pytest.raises(Exception, match="has no files matching filter 'custom'"):
        comfy.run(loader(photos.name, pattern_filter="custom", pattern="*.exr"))


def test_a_thousand_files_one_at_a_time_keep_memory_bounded(comfy, captured, request):
    from pathlib import Path

    import folder_paths
    import psutil

    folder = Path(folder_paths.get_input_directory()) / request.node.name
    folder.mkdir(exist_ok=True)
    for index in range(1000):
        Image.new("RGB", (64, 64), (index % 256, 0, 0)).save(folder / f"f{index}.png")
    process = psutil.Process()
    before = process.memory_info().rss
    comfy.run(folder_loop(folder.name))
    growth = process.memory_info().rss - before
    status = json.loads(captured["status"][-1])
    assert status["processed"] == 1000 and captured["complete"] == [True]
    assert len(list((comfy.output_directory / f"{folder.name}-inverted").iterdir())) == 1000
    # 1000 images of 64x64 float32 would be 49 MB held at once; the loop holds one at a time.
    assert growth < 25e6, f"RSS grew {growth / 1e6:.0f} MB"
