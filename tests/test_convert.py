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
