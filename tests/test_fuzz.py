"""Random graphs through port discovery, interfaces, stitching and UI->API conversion: they may refuse a graph,
but only with the documented error types (pure: no ComfyUI)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discomfort.errors import DiscomfortError
from discomfort.ports import find_ports, interface
from discomfort.ports.stitch import stitch_api, stitch_ui
from discomfort.workflow.convert import ui_to_api
from discomfort.workflow.nodedefs import node_def

DEFS = {
    "DiscomfortPort": node_def("DiscomfortPort", {"required": {"unique_id": ("STRING", {}), "tags": ("STRING", {})},
                                                  "optional": {"value": ("*", {})}}, ["*"]),
    "ImageInvert": node_def("ImageInvert", {"required": {"image": ("IMAGE",)}}, ["IMAGE"]),
    "KSampler": node_def("KSampler", {"required": {"seed": ("INT", {"control_after_generate": True}),
                                                   "steps": ("INT", {}), "model": ("MODEL",)}}, ["LATENT"]),
}  # fmt: skip
KINDS = [*DEFS, "Reroute", "PrimitiveNode", "Note", "Unknown"]
ids = st.integers(1, 8)
scalars = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=4), st.booleans(), st.floats(allow_nan=True))


@st.composite
def api_prompts(draw):
    prompt = {}
    for node_id in draw(st.sets(ids, max_size=7)):
        kind = draw(st.sampled_from(["DiscomfortPort", "ImageInvert", "X"]))
        inputs = {"unique_id": draw(st.sampled_from(["a", "b", "", " "])), "tags": draw(st.sampled_from(["", "loop"]))}
        if draw(st.booleans()):
            inputs["value" if kind == "DiscomfortPort" else "image"] = [str(draw(ids)), draw(st.integers(0, 1))]
        prompt[str(node_id)] = {"class_type": kind, "inputs": inputs}
    return prompt


@st.composite
def ui_workflows(draw):
    nodes = []
    node_ids = sorted(draw(st.sets(ids, max_size=7)))
    for node_id in node_ids:
        widgets = draw(
            st.one_of(st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
        )
        nodes.append({"id": node_id, "type": draw(st.sampled_from(KINDS)), "mode": draw(st.sampled_from([0, 0, 2, 4])),
                      "widgets_values": widgets,
                      "inputs": [{"name": draw(st.sampled_from(["value", "image", "model", "seed"])), "type": "*",
                                  "link": None} for _ in range(draw(st.integers(0, 2)))],
                      "outputs": [{"name": "out", "type": draw(st.sampled_from(["*", "IMAGE"])),
                                   "links": []}]})  # fmt: skip
    links = []
    for link_id in range(1, draw(st.integers(0, 6)) + 1):
        link = [link_id, draw(ids), draw(st.integers(0, 1)), draw(ids), draw(st.integers(0, 2)), "*"]
        links.append(link if draw(st.booleans()) else dict(zip(
            ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link, strict=True)))  # fmt: skip
    return {"nodes": nodes, "links": links, "version": 0.4}


fuzz = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(st.one_of(api_prompts(), ui_workflows()))
def test_discovery_and_interfaces(graph):
    with contextlib.suppress(DiscomfortError):
        find_ports(graph)
        interface(graph)


@fuzz
@given(ui_workflows())
def test_conversion(workflow):
    with contextlib.suppress(DiscomfortError):
        ui_to_api(workflow, DEFS)


@fuzz
@given(st.lists(api_prompts(), min_size=1, max_size=3), st.lists(ui_workflows(), min_size=1, max_size=3))
def test_stitching(prompts, workflows):
    for stitch, graphs in ((stitch_api, prompts), (stitch_ui, workflows)):
        with contextlib.suppress(DiscomfortError):
            stitch(graphs)
