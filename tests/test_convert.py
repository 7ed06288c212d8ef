"""UI -> API conversion, feature by feature (pure: node definitions written out, no ComfyUI)."""

from __future__ import annotations

import pytest

from discomfort.errors import WorkflowError
from discomfort.workflow.convert import ui_to_api
from discomfort.workflow.nodedefs import node_def

DEFS = {
    "KSampler": node_def("KSampler", {"required": {
        "model": ("MODEL",), "seed": ("INT", {"default": 0, "control_after_generate": True}),
        "steps": ("INT", {"default": 20}), "cfg": ("FLOAT", {"default": 8.0}),
        "sampler_name": (["euler", "dpmpp_2m"],), "positive": ("CONDITIONING",), "latent_image": ("LATENT",),
    }}, ["LATENT"]),
    "LoadImage": node_def("LoadImage", {"required": {"image": (["a.png", "b.png"], {"image_upload": True})}},
                          ["IMAGE", "MASK"]),
    "ImageBlur": node_def("ImageBlur", {"required": {"image": ("IMAGE",), "blur_radius": ("INT", {"default": 1}),
                                                     "sigma": ("FLOAT", {"default": 1.0})}}, ["IMAGE"]),
    "ImageInvert": node_def("ImageInvert", {"required": {"image": ("IMAGE",)}}, ["IMAGE"]),
    "SaveImage": node_def("SaveImage", {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {
        "default": "ComfyUI"})}}, [], output_node=True),
    "EmptyImage": node_def("EmptyImage", {"required": {"width": ("INT", {"default": 512}), "height": ("INT", {
        "default": 512}), "batch_size": ("INT", {"default": 1}), "color": ("INT", {"default": 0})}}, ["IMAGE"]),
    "Opt": node_def("Opt", {"required": {"a": ("INT", {"default": 1})}, "optional": {
        "b": ("STRING", {"default": "bee"}), "c": ("IMAGE",), "d": ("FLOAT", {"default": 0.5, "forceInput": True})}},
        ["IMAGE"]),
}  # fmt: skip


def n(node_id, kind, widgets=(), inputs=(), outputs=(), mode=0, **extra):
    values = list(widgets) if isinstance(widgets, (list, tuple)) else widgets
    return {"id": node_id, "type": kind, "mode": mode, "widgets_values": values,
            "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs], **extra}  # fmt: skip


def socket(name, kind="IMAGE", link=None, widget=False):
    spec = {"name": name, "type": kind, "link": link}
    if widget:
        spec["widget"] = {"name": name}
    return spec


def out(kind="IMAGE"):
    return {"name": kind, "type": kind, "links": []}


def sg_links(*links):
    """Links as v1 objects (how subgraph definitions store them) from (id, origin, slot, target, slot, type)."""
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    return [dict(zip(keys, link, strict=True)) for link in links]


def wf(nodes, links, version=0.4, **extra):
    links = sg_links(*links) if version == 1 else [list(link) for link in links]
    return {"nodes": nodes, "links": links, "version": version, **extra}


def test_widgets_by_position_with_control_after_generate_and_a_converted_widget():
    workflow = wf([
        n(1, "KSampler", [123, "randomize", 30, 6.5, "dpmpp_2m"],
          [socket("model", "MODEL"), socket("positive", "CONDITIONING"), socket("latent_image", "LATENT"),
           socket("steps", "INT", link=7, widget=True)], [out("LATENT")]),
        n(2, "PrimitiveNode", [12, "fixed"], outputs=[out("INT")]),
    ], [(7, 2, 0, 1, 3, "INT")])  # fmt: skip
    assert ui_to_api(workflow, DEFS)["1"]["inputs"] == {
        "seed": 123,
        "steps": 12,
        "cfg": 6.5,
        "sampler_name": "dpmpp_2m",
    }


def test_no_control_value_saved_means_nothing_is_skipped():
    workflow = wf([n(1, "KSampler", [5, 30, 7.0, "euler"])], [])
    assert ui_to_api(workflow, DEFS)["1"]["inputs"] == {"seed": 5, "steps": 30, "cfg": 7.0, "sampler_name": "euler"}


def test_upload_widget_value_is_skipped_and_defaults_fill_missing_widgets():
    workflow = wf([n(1, "LoadImage", ["b.png", "image"], outputs=[out(), out("MASK")]),
                   n(2, "Opt", [3])], [])  # fmt: skip
    prompt = ui_to_api(workflow, DEFS)
    assert prompt["1"] == {"class_type": "LoadImage", "inputs": {"image": "b.png"}, "_meta": {"title": "LoadImage"}}
    assert prompt["2"]["inputs"] == {"a": 3, "b": "bee"}  # optional widget default; forceInput d is a socket


def dynamic(options: dict, **extra) -> tuple:
    """A V3 dynamic combo (ComfyUI 0.3x) as INPUT_TYPES gives it: each choice with inputs of its own."""
    return ("COMFY_DYNAMICCOMBO_V3", {"options": [{"key": key, "inputs": inputs} for key, inputs in options.items()],
                                      **extra})  # fmt: skip


CODEC = dynamic({"auto": {"required": {}}, "h264": {"required": {}, "optional": {"encoding": dynamic({
    "auto": {"required": {}}, "re-encode": {"required": {"crf": ("FLOAT", {"default": 23.0})}}})}}})  # fmt: skip
DYNAMIC_DEFS = {
    # ComfyUI 0.33's SaveVideo: format -> codec -> encoding -> crf, and a hidden top-level codec (hidden widgets
    # keep their slot in widgets_values: 0.33's Painter saves its hidden width and height)
    "SaveVideo": node_def("SaveVideo", {"required": {
        "video": ("VIDEO",), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
        "format": dynamic({"auto": {"required": {"codec": CODEC}}, "mp4": {"required": {"codec": CODEC}}}),
    }, "optional": {"codec": (CODEC[0], {**CODEC[1], "hidden": True})}}, [], output_node=True),
    "Mask": node_def("Mask", {"required": {"regions": dynamic({"all": {"required": {}}, "custom": {"required": {
        "lips": ("BOOLEAN", {"default": False}), "eyes": ("BOOLEAN", {"default": False})}}})}}, ["MASK"]),
    "Bool": node_def("Bool", {"required": {"value": ("BOOLEAN", {"default": False})}}, ["BOOLEAN"]),
    # ComfyUI 0.33's Painter: hidden widgets and a socketless COLOR, all saved in widgets_values
    "Painter": node_def("Painter", {"required": {
        "width": ("INT", {"hidden": True, "default": 512, "socketless": True}),
        "height": ("INT", {"hidden": True, "default": 512, "socketless": True}),
        "bg_color": ("COLOR", {"default": "#000000", "socketless": True}),
    }, "optional": {"image": ("IMAGE",)}}, ["IMAGE"]),
    # ComfyUI 0.33's LTXVEmptyLatentAudio: a multi-type input drawn as a FLOAT widget
    "Audio": node_def("Audio", {"required": {"frames": ("INT", {"default": 97}),
                                             "rate": ("FLOAT,INT", {"widgetType": "FLOAT", "default": 25.0})}}, []),
    # ComfyUI 0.33's ComfyMathExpression: sockets values.a, values.b, ... grow as they are linked
    "Math": node_def("Math", {"required": {"expression": ("STRING", {"default": "a + b"}), "values": (
        "COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"value": ("FLOAT,INT,BOOLEAN",)}}}})}}, ["FLOAT"]),
}  # fmt: skip


def test_dynamic_combo_values_are_followed_by_those_of_the_inputs_the_choice_brings():
    workflow = wf([n(1, "SaveVideo", ["video/chunks", "mp4", "h264", "re-encode", 18.0], [socket("video", "VIDEO")]),
                   n(2, "SaveVideo", ["clips", "auto"], [socket("video", "VIDEO")])], [])  # fmt: skip
    prompt = ui_to_api(workflow, DYNAMIC_DEFS)
    assert prompt["1"]["inputs"] == {
        "filename_prefix": "video/chunks",
        "format": "mp4",
        "format.codec": "h264",
        "format.codec.encoding": "re-encode",
        "format.codec.encoding.crf": 18.0,
        "codec": "auto",  # hidden, but a widget all the same: its default
    }
    assert prompt["2"]["inputs"] == {
        "filename_prefix": "clips",
        "format": "auto",
        "format.codec": "auto",
        "codec": "auto",
    }


def test_an_input_a_dynamic_combo_brings_can_be_linked():
    workflow = wf([n(1, "Mask", ["custom", True, False],
                     [socket("regions", "COMBO", widget=True), socket("regions.eyes", "BOOLEAN", link=5, widget=True)],
                     [out("MASK")]),
                   n(2, "Bool", [True], outputs=[out("BOOLEAN")])], [(5, 2, 0, 1, 1, "BOOLEAN")])  # fmt: skip
    assert ui_to_api(workflow, DYNAMIC_DEFS)["1"]["inputs"] == {"regions": "custom", "regions.lips": True,
                                                                "regions.eyes": ["2", 0]}  # fmt: skip


def test_hidden_and_socketless_widgets_take_their_saved_values():
    workflow = wf([n(1, "Painter", [1024, 768, "#ffffff"], [socket("image")], [out()])], [])
    assert ui_to_api(workflow, DYNAMIC_DEFS)["1"]["inputs"] == {"width": 1024, "height": 768, "bg_color": "#ffffff"}


def test_a_multi_type_input_drawn_as_a_widget_takes_its_saved_value():
    workflow = wf([n(1, "Audio", [49, 24.0])], [])
    assert ui_to_api(workflow, DYNAMIC_DEFS)["1"]["inputs"] == {"frames": 49, "rate": 24.0}


def test_sockets_an_autogrow_input_added_take_their_links():
    workflow = wf([n(1, "Math", ["a * 2"], [socket("values.a", "FLOAT,INT,BOOLEAN", link=5),
                                             socket("values.b", "FLOAT,INT,BOOLEAN")], [out("FLOAT")]),
                   n(2, "Bool", [True], outputs=[out("BOOLEAN")])], [(5, 2, 0, 1, 0, "BOOLEAN")])  # fmt: skip
    assert ui_to_api(workflow, DYNAMIC_DEFS)["1"]["inputs"] == {"expression": "a * 2", "values.a": ["2", 0]}


@pytest.mark.parametrize("version", [0.4, 1])
def test_links_reroutes_notes_and_titles(version):
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 255], outputs=[out()], title="Source"),
        n(2, "Reroute", inputs=[socket("", "*", 1)], outputs=[out()]),
        n(3, "Reroute", inputs=[socket("", "*", 2)], outputs=[out()]),
        n(4, "ImageInvert", inputs=[socket("image", link=3)], outputs=[out()]),
        n(5, "SaveImage", ["x"], [socket("images", link=4)]),
        n(6, "Note", ["just a note"]), n(7, "MarkdownNote", ["# also"]),
    ], [(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "IMAGE"), (3, 3, 0, 4, 0, "IMAGE"), (4, 4, 0, 5, 0, "IMAGE")],
        version)  # fmt: skip
    prompt = ui_to_api(workflow, DEFS)
    assert set(prompt) == {"1", "4", "5"}
    assert prompt["4"]["inputs"] == {"image": ["1", 0]} and prompt["5"]["inputs"]["images"] == ["4", 0]
    assert prompt["1"]["_meta"]["title"] == "Source"


def test_muted_nodes_drop_and_bypassed_nodes_pass_their_matching_input_through():
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
        n(2, "ImageBlur", [3, 1.0], [socket("image", link=1)], [out()], mode=4),  # bypassed
        n(3, "ImageInvert", [], [socket("image", link=2)], [out()]),
        n(4, "SaveImage", ["x"], [socket("images", link=3)]),
        n(5, "ImageInvert", [], [socket("image", link=4)], [out()], mode=2),  # muted
        n(6, "Opt", [1], [socket("c", link=5)], [out()]),
    ], [(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "IMAGE"), (3, 3, 0, 4, 0, "IMAGE"), (4, 1, 0, 5, 0, "IMAGE"),
        (5, 5, 0, 6, 2, "IMAGE")])  # fmt: skip
    prompt = ui_to_api(workflow, DEFS)
    assert set(prompt) == {"1", "3", "4", "6"}
    assert prompt["3"]["inputs"]["image"] == ["1", 0]
    assert "c" not in prompt["6"]["inputs"]


def test_nested_subgraphs_flatten_with_prefixed_ids_and_promoted_widgets():
    inner = {
        "id": "inner-uuid", "name": "Blur twice",
        "inputs": [{"name": "image", "type": "IMAGE"}, {"name": "radius", "type": "INT"}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
        "nodes": [n(1, "ImageBlur", [2, 1.0], [socket("image", link=1), socket("blur_radius", "INT", 3, True)],
                    [out()]),
                  n(2, "ImageBlur", [2, 0.5], [socket("image", link=2)], [out()])],
        "links": sg_links((1, -10, 0, 1, 0, "IMAGE"), (2, 1, 0, 2, 0, "IMAGE"),
                          (3, -10, 1, 1, 1, "INT"), (4, 2, 0, -20, 0, "IMAGE")),
    }  # fmt: skip
    outer = {
        "id": "outer-uuid", "name": "Wrapper",
        "inputs": [{"name": "image", "type": "IMAGE"}], "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
        "nodes": [n(7, "inner-uuid", [9], [socket("image", link=1)], [out()],
                    properties={"proxyWidgets": [["-1", "radius"]]}),
                  n(8, "ImageInvert", [], [socket("image", link=2)], [out()])],
        "links": sg_links((1, -10, 0, 7, 0, "IMAGE"), (2, 7, 0, 8, 0, "IMAGE"), (3, 8, 0, -20, 0, "IMAGE")),
    }  # fmt: skip
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
        n(5, "outer-uuid", [0.25], [socket("image", link=1)], [out()],
          properties={"proxyWidgets": [["7:2", "sigma"]]}),
        n(6, "SaveImage", ["x"], [socket("images", link=2)]),
    ], [(1, 1, 0, 5, 0, "IMAGE"), (2, 5, 0, 6, 0, "IMAGE")], definitions={"subgraphs": [outer, inner]})  # fmt: skip
    prompt = ui_to_api(workflow, DEFS)
    assert set(prompt) == {"1", "5:7:1", "5:7:2", "5:8", "6"}
    assert prompt["5:7:1"]["inputs"] == {"image": ["1", 0], "blur_radius": 9, "sigma": 1.0}
    assert prompt["5:7:2"]["inputs"] == {"image": ["5:7:1", 0], "blur_radius": 2, "sigma": 0.25}  # promoted
    assert prompt["5:8"]["inputs"] == {"image": ["5:7:2", 0]}
    assert prompt["6"]["inputs"]["images"] == ["5:8", 0]


def test_subgraph_instance_values_follow_the_definitions_widget_inputs_even_those_it_does_not_list():
    # As 0.33's templates save them: the instance lists its sockets and one widget; its values are those of every
    # widget-typed input of the definition, in the definition's order.
    blur = {
        "id": "blur-uuid", "name": "Blur",
        "inputs": [{"name": "image", "type": "IMAGE"}, {"name": "radius", "type": "INT"},
                   {"name": "sigma", "type": "FLOAT"}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
        "nodes": [n(1, "ImageBlur", [1, 1.0], [socket("image", link=1), socket("blur_radius", "INT", 2, True),
                                               socket("sigma", "FLOAT", 3, True)], [out()])],
        "links": sg_links((1, -10, 0, 1, 0, "IMAGE"), (2, -10, 1, 1, 1, "INT"),
                          (3, -10, 2, 1, 2, "FLOAT"), (4, 1, 0, -20, 0, "IMAGE")),
    }  # fmt: skip
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
        n(5, "blur-uuid", [6, 2.5], [socket("image", link=1), socket("sigma", "FLOAT", widget=True)], [out()]),
    ], [(1, 1, 0, 5, 0, "IMAGE")], definitions={"subgraphs": [blur]})  # fmt: skip
    assert ui_to_api(workflow, DEFS)["5:1"]["inputs"] == {"image": ["1", 0], "blur_radius": 6, "sigma": 2.5}


def test_a_widget_promoted_in_place_gives_its_value_to_every_target_of_the_subgraph_input():
    # As 0.33's templates save them: proxyWidgets names the inner widget, the value stays on the inner node.
    sub = {
        "id": "sub-uuid", "name": "Sub",
        "inputs": [{"name": "radius", "type": "INT"}], "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
        "nodes": [n(1, "ImageBlur", [5, 1.0], [socket("image"), socket("blur_radius", "INT", 1, True)], [out()]),
                  n(2, "Opt", [3], [socket("d", "FLOAT", 2)], [out()])],
        "links": sg_links((1, -10, 0, 1, 1, "INT"), (2, -10, 0, 2, 0, "INT"), (3, 1, 0, -20, 0, "IMAGE")),
    }  # fmt: skip
    workflow = wf([n(5, "sub-uuid", [], [], [out()], properties={"proxyWidgets": [["1", "blur_radius"]]})], [],
                  definitions={"subgraphs": [sub]})  # fmt: skip
    prompt = ui_to_api(workflow, DEFS)
    assert prompt["5:1"]["inputs"]["blur_radius"] == 5
    assert prompt["5:2"]["inputs"]["d"] == 5  # the socket shares the promoted widget's value


def test_a_bypassed_subgraph_node_passes_its_input_through_and_runs_nothing_it_holds():
    sub = {
        "id": "sub-uuid", "name": "Invert twice",
        "inputs": [{"name": "image", "type": "IMAGE"}], "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
        "nodes": [n(1, "ImageInvert", [], [socket("image", link=1)], [out()]),
                  n(2, "ImageInvert", [], [socket("image", link=2)], [out()])],
        "links": sg_links((1, -10, 0, 1, 0, "IMAGE"), (2, 1, 0, 2, 0, "IMAGE"), (3, 2, 0, -20, 0, "IMAGE")),
    }  # fmt: skip
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
        n(5, "sub-uuid", [], [socket("image", link=1)], [out()], mode=4),
        n(6, "SaveImage", ["x"], [socket("images", link=2)]),
    ], [(1, 1, 0, 5, 0, "IMAGE"), (2, 5, 0, 6, 0, "IMAGE")], definitions={"subgraphs": [sub]})  # fmt: skip
    prompt = ui_to_api(workflow, DEFS)
    assert set(prompt) == {"1", "6"}
    assert prompt["6"]["inputs"]["images"] == ["1", 0]


def test_unknown_node_types_are_reported_together():
    workflow = wf([n(3, "FancyNode"), n(9, "OtherPack"), n(4, "ImageInvert")], [])
    with pytest.raises(WorkflowError, match=r"node 3 \(FancyNode\), node 9 \(OtherPack\)"):
        ui_to_api(workflow, DEFS)


def test_list_widgets_are_wrapped_and_api_prompts_pass_through():
    defs = {"Lst": node_def("Lst", {"required": {"v": ("STRING", {})}})}
    assert ui_to_api(wf([n(1, "Lst", [[1, 2]])], []), defs)["1"]["inputs"] == {"v": {"__value__": [1, 2]}}
    api = {"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}}
    assert ui_to_api(api, DEFS) == api


LOOP_OUTPUTS = ("value_1", "value_2", "accumulated_1", "accumulated_2", "iterations")
LOOP = node_def("DiscomfortLoop", {"required": {"uids": ("STRING", {"default": ""})}}, ["*", "*", "*", "*", "INT"],
                output_names=LOOP_OUTPUTS)  # fmt: skip


def named(name, kind="*", links=()):
    return {"name": name, "type": kind, "links": list(links)}


def test_links_out_of_a_node_showing_some_outputs_go_to_the_outputs_they_name():
    # Discomfort's frontend shows a loop's sockets in use only: accumulated_2 at slot 1 is the definition's 4th output.
    defs = {**DEFS, "DiscomfortLoop": LOOP}
    loop = n(1, "DiscomfortLoop", ["a"], outputs=[named("value_1", links=[1]), named("accumulated_2", links=[2]),
                                                  named("iterations", "INT", links=[3])])  # fmt: skip
    nodes = [loop, *(n(k, "SaveImage", ["x"], inputs=[socket("images", link=k - 1)]) for k in (2, 3, 4))]
    prompt = ui_to_api(wf(nodes, [(1, 1, 0, 2, 0, "*"), (2, 1, 1, 3, 0, "*"), (3, 1, 2, 4, 0, "INT")]), defs)
    assert [prompt[str(k)]["inputs"]["images"] for k in (2, 3, 4)] == [["1", 0], ["1", 3], ["1", 4]]


def test_slots_named_as_the_definition_or_not_at_all_stay_where_they_are():
    defs = {**DEFS, "DiscomfortLoop": LOOP,
            "Two": node_def("Two", {"required": {}}, ["IMAGE", "IMAGE"], output_names=("IMAGE", "IMAGE"))}  # fmt: skip
    every = [named(name, links=[k + 1] if k == 3 else []) for k, name in enumerate(LOOP_OUTPUTS)]
    unnamed = [named("*", links=[5] if k == 3 else []) for k in range(5)]
    nodes = [n(1, "DiscomfortLoop", ["a"], outputs=every), n(2, "DiscomfortLoop", ["a"], outputs=unnamed),
             n(3, "Two", outputs=[named("IMAGE"), named("IMAGE", links=[6])]),
             *(n(k, "SaveImage", ["x"], inputs=[socket("images", link=k)]) for k in (4, 5, 6))]  # fmt: skip
    links = [(4, 1, 3, 4, 0, "*"), (5, 2, 3, 5, 0, "*"), (6, 3, 1, 6, 0, "IMAGE")]
    prompt = ui_to_api(wf(nodes, links), defs)
    assert [prompt[str(k)]["inputs"]["images"] for k in (4, 5, 6)] == [["1", 3], ["2", 3], ["3", 1]]


# --- what ComfyUI's official templates hold (0.33's comfyui-workflow-templates, read with the frontend's source) ---

UPLOAD = {"name": "upload", "options": {"serialize": False, "canvasOnly": True}, "label": "choose file to upload",
          "type": "button", "y": 70, "last_y": 70, "computedDisabled": False, "clicked": False}  # fmt: skip
TEMPLATE_DEFS = {
    "LoadImageMask": node_def("LoadImageMask", {"required": {
        "image": (["a.png", "b.png"], {"image_upload": True}), "channel": (["alpha", "red", "green", "blue"],)}},
        ["MASK"]),
    "LoadAudio": node_def("LoadAudio", {"required": {"audio": (["voice.mp3"], {"audio_upload": True})},
                                        "optional": {"gain": ("FLOAT", {"default": 1.0})}}, ["AUDIO"]),
    # 0.33's CreateBoundingBoxes and BuildJsonPromptIdeogram: BOUNDING_BOXES and COLORS widgets with a socket
    "CreateBoundingBoxes": node_def("CreateBoundingBoxes", {"required": {
        "width": ("INT", {"default": 1024}), "height": ("INT", {"default": 1024}),
        "editor_state": ("BOUNDING_BOXES", {"default": [], "socketless": False})},
        "optional": {"background": ("IMAGE",),
                     "last_incoming": ("BOUNDING_BOXES", {"default": [], "socketless": True})}}, ["BOUNDING_BOX"]),
    # 0.33's Load3D: an upload combo, a LOAD_3D widget, two INTs
    "Load3D": node_def("Load3D", {"required": {
        "model_file": (["none", "3d/toy.glb"], {"file_upload": True}), "image": ("LOAD_3D", {}),
        "width": ("INT", {"default": 1024}), "height": ("INT", {"default": 1024})}}, ["IMAGE", "MASK"]),
    # 0.33's GeminiNanoBanana2V2: an autogrow of images that a dynamic combo's choice brings
    "Banana": node_def("Banana", {"required": {"model": ("COMFY_DYNAMICCOMBO_V3", {"options": [
        {"key": "Nano Banana 2", "inputs": {"required": {"prompt": ("STRING", {"default": ""})}, "optional": {
            "images": ("COMFY_AUTOGROW_V3", {"template": {"input": {"optional": {"image": ("IMAGE",)}},
                                                          "prefix": "image_", "min": 1, "max": 14}})}}}]})}},
        ["IMAGE"]),
    "CustomCombo": node_def("CustomCombo", {"required": {"choice": (["x"], {})}}, ["STRING", "INT"]),
    "Sampler": node_def("Sampler", {"required": {
        "sampler": (["euler", "dpmpp_2m"], {"control_after_generate": True}), "steps": ("INT", {"default": 20})}},
        ["LATENT"]),
    # The newest ComfyUI's dynamic inputs (comfy_api/latest/_io.py): a slot bringing a widget once linked; rows
    "Guided": node_def("Guided", {"required": {"guide": ("COMFY_DYNAMICSLOT_V3", {
        "slotType": "IMAGE", "inputs": {"required": {"strength": ("FLOAT", {"default": 0.5})}}}),
        "steps": ("INT", {"default": 20})}}, ["IMAGE"]),
    "Loras": node_def("Loras", {"required": {"model": ("MODEL",), "loras": ("COMFY_DYNAMICGROUP_V3", {
        "template": {"required": {"name": (["a.safetensors", "b.safetensors"], {}),
                                  "strength": ("FLOAT", {"default": 1.0})}}, "min": 0, "max": 20}),
        "seed": ("INT", {"default": 0, "control_after_generate": True})}}, ["MODEL"]),
}  # fmt: skip
TEMPLATE_DEFS.update(DEFS)


def test_an_upload_button_saved_as_a_widget_object_takes_its_slot():
    """R1. 0.33's templates-textured_logotype-v2.1.json saves LoadImage's upload button as the button widget
    itself (a dict), which made the upload-value test raise `unhashable type: 'dict'`. The frontend appends that
    button to the node's required inputs (uploadImage.ts: `required.upload = ['IMAGEUPLOAD', ...]`), so its slot
    follows the last required widget: after LoadImageMask's channel, not after its image."""
    workflow = wf([n(1, "LoadImage", ["b.png", UPLOAD], outputs=[out(), out("MASK")]),
                   n(2, "LoadImageMask", ["a.png", "red", UPLOAD], outputs=[out("MASK")]),
                   n(3, "LoadImageMask", ["a.png", "green", "image"], outputs=[out("MASK")])], [])  # fmt: skip
    prompt = ui_to_api(workflow, TEMPLATE_DEFS)
    assert prompt["1"]["inputs"] == {"image": "b.png"}
    assert prompt["2"]["inputs"] == {"image": "a.png", "channel": "red"}
    assert prompt["3"]["inputs"] == {"image": "a.png", "channel": "green"}


def test_an_audio_upload_brings_a_player_and_a_button_before_the_optional_widgets():
    """0.33's templates save LoadAudio as [file, null, null]: the player (AUDIO_UI) and the upload button that
    uploadAudio.ts appends to the required inputs; newer frontends no longer save the player (serialize false)."""
    workflow = wf([n(1, "LoadAudio", ["voice.mp3", None, None, 0.5], outputs=[out("AUDIO")]),
                   n(2, "LoadAudio", ["voice.mp3", "", 0.25], outputs=[out("AUDIO")])], [])  # fmt: skip
    prompt = ui_to_api(workflow, TEMPLATE_DEFS)
    assert prompt["1"]["inputs"] == {"audio": "voice.mp3", "gain": 0.5}
    assert prompt["2"]["inputs"] == {"audio": "voice.mp3", "gain": 0.25}


def test_an_autogrow_socket_a_dynamic_combo_brings_keeps_its_link():
    """R2. 0.33's api_nano_banana_2 templates link `model.images.image_1`: an autogrow `images` that the `model`
    combo's choice brings (dynamicWidgets.ts names autogrow sockets `<group>.<name>`, the group here being
    `model.images`); matched at its first dot it was taken for a socket of `model` and its link dropped."""
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
        n(2, "Banana", ["Nano Banana 2", "a cat"], [socket("model.images.image_1", link=1),
                                                    socket("model.images.image_2")], [out()]),
    ], [(1, 1, 0, 2, 0, "IMAGE")])  # fmt: skip
    assert ui_to_api(workflow, TEMPLATE_DEFS)["2"]["inputs"] == {
        "model": "Nano Banana 2", "model.prompt": "a cat", "model.images.image_1": ["1", 0]}  # fmt: skip


def test_inputs_the_frontend_draws_as_widgets_take_slots_socket_or_not():
    """R3. The frontend draws a widget for every input whose type its widget registry holds (widgets.ts
    ComfyWidgets: ..., BOUNDING_BOXES, COLORS, ...; litegraphService.addInputSocket), socketless or not. 0.33's
    api_ideogram_p_image_t2i.json saves CreateBoundingBoxes as [width, height, boxes, last_incoming]; without
    editor_state's slot every later value moved up by one."""
    boxes = [{"x": 128, "y": 32, "width": 824, "height": 124, "metadata": {"type": "text"}}]
    workflow = wf([n(1, "CreateBoundingBoxes", [1024, 768, boxes, []], [socket("background")],
                     [out("BOUNDING_BOX")])], [])  # fmt: skip
    assert ui_to_api(workflow, TEMPLATE_DEFS)["1"]["inputs"] == {
        "width": 1024,
        "height": 768,
        "editor_state": {"__value__": boxes},
        "last_incoming": {"__value__": []},
    }


def test_load3d_buttons_take_slots_before_its_widget():
    """R4. 0.33's api_hunyuan3d templates save Load3D as [file, 'upload3dmodel', 'uploadExtraResources', 'clear',
    '', 1024, 1024]: the LOAD_3D widget first adds three buttons, whose values are saved, then its own value
    (load3d.ts, getCustomWidgets LOAD_3D). `file_upload` (comfy_api/latest/_io.py UploadType.model) is an
    upload combo like the others."""
    workflow = wf([n(1, "Load3D", ["3d/toy.glb", "upload3dmodel", "uploadExtraResources", "clear", "", 768, 512],
                     outputs=[out(), out("MASK")])], [])  # fmt: skip
    assert ui_to_api(workflow, TEMPLATE_DEFS)["1"]["inputs"] == {"model_file": "3d/toy.glb", "image": "",
                                                                 "width": 768, "height": 512}  # fmt: skip


def test_custom_combo_gives_the_widgets_its_frontend_extension_adds():
    """0.33's templates save CustomCombo as [choice, index, option0, option1, ..., '']: customCombo.ts adds a
    hidden `index` widget and a string widget per option; the node takes every input and returns the index."""
    workflow = wf([n(1, "CustomCombo", ["9:16", 1, "16:9", "9:16", ""], outputs=[out("STRING"), out("INT")])], [])
    assert ui_to_api(workflow, TEMPLATE_DEFS)["1"]["inputs"] == {
        "choice": "9:16", "index": 1, "option0": "16:9", "option1": "9:16", "option2": ""}  # fmt: skip


def test_a_combo_control_brings_a_filter_list_widget():
    """A combo asking for control_after_generate gets the control combo and a filter-list string widget
    (useComboWidget.ts calls addValueControlWidgets, whose filter list is on by default); both are saved."""
    workflow = wf([n(1, "Sampler", ["dpmpp_2m", "increment-wrap", "", 12], outputs=[out("LATENT")])], [])
    assert ui_to_api(workflow, TEMPLATE_DEFS)["1"]["inputs"] == {"sampler": "dpmpp_2m", "steps": 12}


def test_a_dynamic_slot_brings_its_inputs_once_linked():
    """The newest ComfyUI's DynamicSlot (comfy_api/latest/_io.py): a socket whose inputs, `<slot>.<input>`, exist
    only while it is linked (`_expand_schema_for_dynamic` adds them when the slot is among the live inputs). The
    frontend read here draws no DynamicSlot yet; its widgets are taken where a dynamic combo's would be, right
    after it."""
    linked = wf([n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
                 n(2, "Guided", [0.75, 30], [socket("guide", link=1)], [out()])],
                [(1, 1, 0, 2, 0, "IMAGE")])  # fmt: skip
    unlinked = wf([n(2, "Guided", [30], [socket("guide")], [out()])], [])
    assert ui_to_api(linked, TEMPLATE_DEFS)["2"]["inputs"] == {"guide": ["1", 0], "guide.strength": 0.75,
                                                               "steps": 30}  # fmt: skip
    assert ui_to_api(unlinked, TEMPLATE_DEFS)["2"]["inputs"] == {"steps": 30}


def test_a_dynamic_group_gives_its_rows_fields_by_row():
    """The newest ComfyUI's DynamicGroup: the frontend saves the group's row count (its hidden controller
    widget, left out of the prompt by `serialize: false` in its options) and then each row's fields, the row
    headers and the add button being `serialize: false` (dynamicGroupWidget.ts); the prompt names the fields
    `<group>.<row>.<field>` (_io.py `_DynamicGroup`)."""
    workflow = wf([n(1, "Loras", [2, "a.safetensors", 0.8, "b.safetensors", 1.25, 7, "fixed"],
                     [socket("model", "MODEL")], [out("MODEL")])], [])  # fmt: skip
    assert ui_to_api(workflow, TEMPLATE_DEFS)["1"]["inputs"] == {
        "loras.0.name": "a.safetensors", "loras.0.strength": 0.8, "loras.1.name": "b.safetensors",
        "loras.1.strength": 1.25, "seed": 7}  # fmt: skip


def test_a_template_whose_only_unknown_nodes_are_bypassed_converts():
    """R4. A bypassed node never runs: the frontend passes it through by its sockets' types, which the saved
    workflow holds, so a bypassed node of a pack this ComfyUI lacks needs no definition."""
    workflow = wf([
        n(1, "EmptyImage", [8, 8, 1, 0], outputs=[out()]),
        n(2, "SomePackUpscaler", [4, "lanczos"], [socket("image", link=1)], [out()], mode=4),
        n(3, "SaveImage", ["x"], [socket("images", link=2)]),
    ], [(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "IMAGE")])  # fmt: skip
    prompt = ui_to_api(workflow, TEMPLATE_DEFS)
    assert set(prompt) == {"1", "3"} and prompt["3"]["inputs"]["images"] == ["1", 0]
