"""Writes example_workflows/*.json: UI-format workflows (as ComfyUI's frontend saves them) for the jobs people loop
for, and beside each a thumbnail (NAME.jpg, what ComfyUI's template browser shows) made from what the workflow
itself produces when run. Widget order comes from the running ComfyUI's node definitions, so the files convert and
validate.

    python3 tools/dev.py python tools/example_workflows.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from discomfort.api import Runtime
from discomfort.executor.embedded import boot
from discomfort.executor.loop_node import output_slot
from discomfort.executor.node_defs import LiveNodeDefs

OUT = Path(__file__).resolve().parent.parent / "example_workflows"


class Canvas:
    """Builds one UI workflow: nodes with positions, widget values by name, links by (node, output)."""

    def __init__(self, defs):
        self.defs, self.nodes, self.links = defs, [], []

    def add(self, node_id, kind, pos, widgets=None, links=None, title=None, size=(300, 120)):
        widgets, links = widgets or {}, links or {}
        spec = self.defs[kind]
        inputs, values = [], []
        for item in spec.inputs:
            if item.name in links:
                origin, slot = links[item.name]
                link_id = len(self.links) + 1
                out_type = self.defs[self._kind(origin)].outputs[slot] if self._kind(origin) in self.defs else "*"
                self.links.append([link_id, origin, slot, node_id, len(inputs), out_type])
                entry = {"name": item.name, "type": item.type if item.type != "COMBO" else "COMBO", "link": link_id}
                if item.is_widget:
                    entry["widget"] = {"name": item.name}
                inputs.append(entry)
            elif not item.is_widget:
                inputs.append({"name": item.name, "type": item.type, "link": None})
            if item.is_widget:
                value = widgets.get(item.name, item.default)
                values.append(value)
                if item.has_control_widget():
                    values.append("fixed")
                if item.has_upload_widget():
                    values.append("image")
        outputs = [{"name": kind_name, "type": kind_name, "links": [], "slot_index": i}
                   for i, kind_name in enumerate(spec.outputs)]  # fmt: skip
        node = {"id": node_id, "type": kind, "pos": list(pos), "size": list(size), "flags": {},
                "order": len(self.nodes), "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": kind}, "widgets_values": values}  # fmt: skip
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node_id

    def _port_type(self, by_id, port_id):
        fed = [link[5] for link in self.links if link[3] == port_id]
        if fed and fed[0] != "*":
            return fed[0]
        for link in self.links:
            if link[1] == port_id:
                socket = by_id[link[3]]["inputs"][link[4]]
                if socket["type"] not in ("*", "COMBO"):
                    return socket["type"]
        return "*"

    def _kind(self, node_id):
        return next(n["type"] for n in self.nodes if n["id"] == node_id)

    def workflow(self, note=None):
        by_id = {n["id"]: n for n in self.nodes}
        for link_id, origin, slot, _target, _target_slot, _kind in self.links:
            by_id[origin]["outputs"][slot]["links"].append(link_id)
        # A port passes on what feeds it (else what its consumers take): its links carry that type, as the
        # frontend draws them (an IMAGE link blue, not grey).
        for link in self.links:
            if by_id[link[1]]["type"] == "DiscomfortPort":
                link[5] = self._port_type(by_id, link[1])
                by_id[link[1]]["outputs"][0]["type"] = link[5]
        nodes = list(self.nodes)
        if note:
            nodes.append({"id": max(by_id) + 1, "type": "MarkdownNote", "pos": [0, -220], "size": [560, 180],
                          "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [],
                          "properties": {}, "widgets_values": [note]})  # fmt: skip
        return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(self.links), "nodes": nodes,
                "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
                "version": 0.4}  # fmt: skip


def port(canvas, node_id, uid, pos, source=None, tags="loop", title=None):
    return canvas.add(node_id, "DiscomfortPort", pos, {"unique_id": uid, "tags": tags},
                      {"value": source} if source else {}, title or uid, size=(220, 80))  # fmt: skip


def refine(defs):
    c = Canvas(defs)
    c.add(1, "EmptyImage", (0, 0), {"width": 96, "height": 96, "color": 0x202040}, title="Background")
    c.add(2, "EmptyImage", (0, 200), {"width": 32, "height": 32, "color": 0xFFD040}, title="Square")
    c.add(3, "ImageCompositeMasked", (340, 0), {"x": 32, "y": 32}, {"destination": (1, 0), "source": (2, 0)})
    port(c, 4, "image", (680, 0), (3, 0), title="image enters")
    c.add(5, "ImageBlur", (940, 0), {"blur_radius": 2, "sigma": 1.0}, {"image": (4, 0)}, title="Refinement step")
    port(c, 6, "image", (1280, 0), (5, 0), title="image leaves")
    c.add(7, "DiscomfortImageDifference", (1280, 150), {"threshold": 0.002}, {"image_a": (4, 0), "image_b": (5, 0)})
    port(c, 8, "settled", (1620, 150), (7, 1), title="settled (stop)")
    c.add(9, "SaveImage", (1280, 330), {"filename_prefix": "refine/step"}, {"images": (5, 0)}, size=(300, 300))
    c.add(10, "DiscomfortLoop", (680, 500), {"body": "loop", "iterations": 40, "uids": "image",
                                             "stop_when": "settled"}, size=(340, 260))  # fmt: skip
    c.add(11, "SaveImage", (1100, 700), {"filename_prefix": "refine/final"}, {"images": (10, 0)}, size=(300, 300))
    return c.workflow(
        "**Iterative refinement.** The ports tagged `loop` mark the body: the image is blurred again "
        "and again, every iteration saved, until it changes by less than the threshold (or 40 times)."
    )


def folder(defs):
    c = Canvas(defs)
    port(c, 1, "image", (0, 0), title="image (each file)")
    port(c, 2, "filename", (0, 150), title="filename")
    c.add(3, "ImageInvert", (300, 0), links={"image": (1, 0)}, title="Process")
    c.add(4, "DiscomfortSaveImage", (600, 0), {"subfolder": "folder_example"}, {"images": (3, 0), "filename": (2, 0)})
    c.add(
        10, "DiscomfortFolderLoop", (0, 350), {"folder": "discomfort_examples/folder", "body": "loop"}, size=(360, 240)
    )
    return c.workflow(
        "**A folder, one image at a time.** Each image in the folder is inverted and saved under its own name in "
        "`output/folder_example`, one in memory at a time.\n\n**To fill the folder:** make the folder "
        "`discomfort_examples/folder` inside ComfyUI's `input` folder and copy your images into it (PNG, JPEG, "
        "WebP, BMP, TIFF or GIF), or point `folder` at any folder inside `input` or `output`; images uploaded "
        "with a Load Image node land in `input` itself, so `folder` set to `.` loops over those."
    )


def video(defs):
    c = Canvas(defs)
    c.add(
        1, "EmptyImage", (0, 0), {"width": 64, "height": 64, "batch_size": 4, "color": 0x101010}, title="First context"
    )
    port(c, 2, "tail", (340, 0), (1, 0), title="tail (last frames)")
    c.add(5, "EmptyImage", (600, 150), {"width": 64, "height": 64, "batch_size": 12, "color": 0x3060A0},
          title="Stand-in for a video model: new frames")  # fmt: skip
    c.add(6, "ImageBatch", (920, 0), links={"image1": (2, 0), "image2": (5, 0)}, title="Chunk: context + new frames")
    port(c, 7, "chunk", (1240, 0), (6, 0))
    c.add(8, "DiscomfortLastFrames", (1240, 150), {"count": 4}, {"images": (6, 0)})
    port(c, 9, "tail", (1560, 150), (8, 0), title="tail (next context)")
    c.add(10, "DiscomfortLoop", (340, 400), {"body": "loop", "iterations": 5, "uids": "tail", "accumulate": "chunk",
                                             "storage": "disk"}, size=(340, 260))  # fmt: skip
    chunks = (10, output_slot("accumulated_1"))
    c.add(11, "DiscomfortJoinChunks", (760, 400), {"chunk_length": 16, "overlap": 4}, {"chunks": chunks})
    c.add(12, "CreateVideo", (1100, 400), {"fps": 8.0}, {"images": (11, 0)})
    c.add(13, "SaveVideo", (1400, 400), {"filename_prefix": "video/chunks", "format": "mp4", "codec": "h264"},
          {"video": (12, 0)})  # fmt: skip
    return c.workflow(
        "**Long video in chunks.** Each iteration makes a 16-frame chunk starting from the last 4 frames "
        "of the previous one; chunks wait on disk; the seams are joined (5 x 16 - 4 x 4 = 64 frames) "
        "and saved as a video. Swap the EmptyImage for your video model."
    )


def pipeline_start(defs):
    c = Canvas(defs)
    c.add(1, "EmptyImage", (0, 0), {"width": 64, "height": 64, "color": 0x203050})
    c.add(2, "EmptyImage", (0, 200), {"width": 24, "height": 24, "color": 0xF0F0F0})
    c.add(3, "ImageCompositeMasked", (340, 0), {"x": 20, "y": 20}, {"destination": (1, 0), "source": (2, 0)})
    port(c, 4, "image", (680, 0), (3, 0), tags="")
    return c.workflow("**Pipeline, part 1:** makes the starting image and gives it as `image`.")


def pipeline_refine(defs):
    c = Canvas(defs)
    port(c, 1, "image", (0, 0), tags="")
    c.add(2, "ImageBlur", (300, 0), {"blur_radius": 2, "sigma": 1.0}, {"image": (1, 0)})
    port(c, 3, "image", (640, 0), (2, 0), tags="")
    c.add(4, "SaveImage", (640, 150), {"filename_prefix": "pipeline/step"}, {"images": (2, 0)}, size=(300, 300))
    return c.workflow(
        "**Pipeline, part 2:** takes `image`, blurs it, gives it back. Run both files stitched: "
        "`discomfort run pipeline_1_start.json pipeline_2_refine.json -n 5`."
    )


STATES = ("refine_then_upscale_1_start", "refine_then_upscale_2_refine", "refine_then_upscale_3_upscale")
HOW_TO_RUN_STATES = (
    "Run the three files as one state machine: copy them into your workflows folder (`user/default/workflows`) "
    f"and give `{STATES[0]}.json` to a Discomfort Workflow Loop (iterations 20), or `discomfort run {STATES[0]}.json "
    "-n 20`. The loop's `path` output lists the file each iteration ran."
)


def states_start(defs):
    c = Canvas(defs)
    c.add(1, "EmptyImage", (0, 0), {"width": 96, "height": 96, "color": 0x202040}, title="Background")
    c.add(2, "EmptyImage", (0, 200), {"width": 32, "height": 32, "color": 0xFFD040}, title="Square")
    c.add(3, "ImageCompositeMasked", (340, 0), {"x": 32, "y": 32}, {"destination": (1, 0), "source": (2, 0)})
    port(c, 4, "image", (680, 0), (3, 0), tags="", title="image leaves")
    c.add(5, "PrimitiveString", (340, 300), {"value": f"{STATES[1]}.json"}, title="The next file")
    port(c, 6, "next", (680, 300), (5, 0), tags="", title="next")
    return c.workflow(f"**Refine, then upscale (1 of 3): start.** Makes the starting image and names the file to run "
                      f"next in `next`.\n\n{HOW_TO_RUN_STATES}")  # fmt: skip


def states_refine(defs):
    c = Canvas(defs)
    port(c, 1, "image", (0, 0), tags="", title="image enters")
    c.add(2, "ImageBlur", (300, 0), {"blur_radius": 2, "sigma": 1.0}, {"image": (1, 0)}, title="Refinement step")
    port(c, 3, "image", (640, 0), (2, 0), tags="", title="image leaves")
    c.add(4, "DiscomfortImageDifference", (640, 150), {"threshold": 0.002}, {"image_a": (1, 0), "image_b": (2, 0)})
    c.add(5, "DiscomfortChoose", (980, 150), {"if_true": f"{STATES[2]}.json", "if_false": f"{STATES[1]}.json"},
          {"condition": (4, 1)}, title="Settled? upscale : refine again", size=(420, 120))  # fmt: skip
    port(c, 6, "next", (1440, 150), (5, 0), tags="", title="next")
    c.add(7, "SaveImage", (640, 330), {"filename_prefix": "refine_then_upscale/step"}, {"images": (2, 0)},
          size=(300, 300))  # fmt: skip
    return c.workflow("**Refine, then upscale (2 of 3): refine.** Blurs `image` once and measures how much it "
                      "changed; while it still changes, `next` names this file again, once it has settled the "
                      f"upscaler.\n\n{HOW_TO_RUN_STATES}")  # fmt: skip


def states_upscale(defs):
    c = Canvas(defs)
    port(c, 1, "image", (0, 0), tags="", title="image enters")
    c.add(2, "ImageScaleBy", (300, 0), {"upscale_method": "bilinear", "scale_by": 2.0}, {"image": (1, 0)})
    port(c, 3, "image", (640, 0), (2, 0), tags="", title="image leaves")
    c.add(4, "SaveImage", (640, 150), {"filename_prefix": "refine_then_upscale/final"}, {"images": (2, 0)},
          size=(300, 300))  # fmt: skip
    return c.workflow("**Refine, then upscale (3 of 3): upscale.** Doubles the settled image and saves it. It gives "
                      f"no `next`: the loop ends after it.\n\n{HOW_TO_RUN_STATES}")  # fmt: skip


EXAMPLES = (("refine_until_settled", refine), ("folder_one_at_a_time", folder), ("video_in_chunks", video),
            ("pipeline_1_start", pipeline_start), ("pipeline_2_refine", pipeline_refine),
            (STATES[0], states_start), (STATES[1], states_refine), (STATES[2], states_upscale))  # fmt: skip


def thumbnails(comfy, defs, workflows):
    """Each example run on the embedded ComfyUI, its result drawn into NAME.jpg."""
    import folder_paths
    import numpy as np
    from PIL import Image

    from discomfort.ports.stitch import stitch_ui
    from discomfort.workflow.convert import ui_to_api

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        comfy.set_output_directory(scratch / "output")
        folder = Path(folder_paths.get_input_directory()) / "discomfort_examples" / "folder"
        folder.mkdir(parents=True, exist_ok=True)
        for index, color in enumerate(((230, 90, 60), (60, 160, 220), (240, 200, 70))):
            Image.new("RGB", (96, 96), color).save(folder / f"sample_{index + 1}.png")
        for name in ("refine_until_settled", "folder_one_at_a_time", "video_in_chunks"):
            comfy.run(ui_to_api(workflows[name], defs))
        stitched = comfy.run(
            ui_to_api(stitch_ui([workflows["pipeline_1_start"], workflows["pipeline_2_refine"]]), defs)
        )
        output = scratch / "output"
        pictures = {
            "refine_until_settled": [*sorted((output / "refine").glob("step_*.png"))[:3],
                                     *sorted((output / "refine").glob("final_*.png"))],
            "folder_one_at_a_time": sorted((output / "folder_example").glob("*.png")),
            "video_in_chunks": [_video_frames(next((output / "video").glob("chunks_*.mp4")), 4)],
        }  # fmt: skip
        pictures["pipeline_1_start"] = pictures["pipeline_2_refine"] = [
            output / image.get("subfolder", "") / image["filename"] for image in stitched.images()
        ][:4]
        with Runtime(output_directory=output) as runtime:  # the state machine, from the files as written
            runtime.run([OUT / f"{STATES[0]}.json"], iterations=20)
        states = output / "refine_then_upscale"
        strip = [*sorted(states.glob("step_*.png"))[:3], *states.glob("final_*.png")]
        pictures.update({name: strip for name in STATES})
        for name, paths in pictures.items():
            frames = [np.asarray(path.convert("RGB") if isinstance(path, Image.Image) else Image.open(path).convert(
                "RGB").resize((160, 160), Image.NEAREST)) for path in paths]  # fmt: skip
            strip = Image.fromarray(np.concatenate(frames, axis=1))
            strip.thumbnail((512, 512))
            strip.save(OUT / f"{name}.jpg", quality=88)
            print(OUT / f"{name}.jpg")


def _video_frames(path, count):
    import av
    from PIL import Image

    with av.open(str(path)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    chosen = [frames[i * (len(frames) - 1) // (count - 1)] for i in range(count)]
    strip = Image.new("RGB", (160 * count, 160))
    for index, frame in enumerate(chosen):
        strip.paste(frame.resize((160, 160), Image.NEAREST), (160 * index, 0))
    return strip


def main():
    comfy = boot()
    defs = LiveNodeDefs()
    OUT.mkdir(exist_ok=True)
    workflows = {}
    for name, build in EXAMPLES:
        workflows[name] = build(defs)
        (OUT / f"{name}.json").write_text(json.dumps(workflows[name], indent=1) + "\n")
        print(OUT / f"{name}.json")
    thumbnails(comfy, defs, workflows)


if __name__ == "__main__":
    main()
