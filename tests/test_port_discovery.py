"""Port discovery and mode inference over API prompts and UI workflows (pure: no ComfyUI)."""

from __future__ import annotations

import pytest

from discomfort.errors import PortError, WorkflowError
from discomfort.ports import Port, PortMode, Role, find_ports, parse_tags, validate_ports
from discomfort.workflow.graph import detect_format, is_link

INPUT, OUTPUT, PASSTHRU, UNCONNECTED = PortMode.INPUT, PortMode.OUTPUT, PortMode.PASSTHRU, PortMode.UNCONNECTED


def port(uid: str, value=None, tags: str = "") -> dict:
    inputs = {"unique_id": uid, "tags": tags}
    if value is not None:
        inputs["value"] = value
    return {"class_type": "DiscomfortPort", "inputs": inputs}


def node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}


def modes(graph) -> dict[str, tuple[str, PortMode]]:
    return {p.node_id: (p.uid, p.mode) for p in find_ports(graph)}


# --- API prompts --------------------------------------------------------------------------------------------------


def test_api_input_port_feeds_but_is_not_fed():
    graph = {"1": port("image"), "2": node("ImageInvert", image=["1", 0])}
    assert modes(graph) == {"1": ("image", INPUT)}


def test_api_output_port_is_fed_but_feeds_nothing():
    graph = {"1": node("EmptyImage", width=8), "2": port("result", ["1", 0])}
    assert modes(graph) == {"2": ("result", OUTPUT)}


def test_api_passthru_port_is_fed_and_feeds():
    graph = {"1": node("EmptyImage"), "2": port("image", ["1", 0]), "3": node("ImageInvert", image=["2", 0])}
    assert modes(graph) == {"2": ("image", PASSTHRU)}


def test_api_port_with_no_links_is_unconnected_not_both():
    (found,) = find_ports({"7": port("lonely")})
    assert found.mode is UNCONNECTED
    assert not found.takes and not found.gives


def test_api_port_feeding_several_nodes_is_one_port():
    graph = {
        "1": port("image"),
        "2": node("ImageInvert", image=["1", 0]),
        "3": node("ImageBlur", image=["1", 0], blur_radius=1),
        "4": node("SaveImage", images=["1", 0]),
    }
    assert modes(graph) == {"1": ("image", INPUT)}


def test_api_several_ports_each_get_their_own_mode_in_id_order():
    graph = {
        "10": port("seed"),
        "2": node("EmptyImage"),
        "3": port("image", ["2", 0]),
        "4": node("ImageInvert", image=["3", 0]),
        "5": port("inverted", ["4", 0]),
        "9": node("KSampler", seed=["10", 0]),
        "11": port("spare"),
    }
    assert list(modes(graph).items()) == [
        ("3", ("image", PASSTHRU)),
        ("5", ("inverted", OUTPUT)),
        ("10", ("seed", INPUT)),
        ("11", ("spare", UNCONNECTED)),
    ]


def test_api_ports_keep_tags_and_titles():
    graph = {"1": port("image", tags=" loop, refine ,loop,"), "2": node("ImageInvert", image=["1", 0])}
    graph["1"]["_meta"] = {"title": "Port in"}
    (found,) = find_ports(graph)
    assert found == Port("1", "image", ("loop", "refine"), INPUT, "*", "Port in", Role.ENTRY)


# --- UI workflows -------------------------------------------------------------------------------------------------


def ui_node(node_id, type_, widgets=(), inputs=(), mode=0):
    return {"id": node_id, "type": type_, "mode": mode, "widgets_values": list(widgets),
            "inputs": [{"name": name, "type": "*", "link": None} for name in inputs]}  # fmt: skip


def ui_port(node_id, uid, tags="", mode=0, inputs=("value",)):
    return ui_node(node_id, "DiscomfortPort", [uid, tags], inputs, mode)


def v04(*nodes, links=()):
    return {"last_node_id": 10, "last_link_id": len(links), "nodes": list(nodes), "links": [list(x) for x in links],
            "version": 0.4}  # fmt: skip


def v1(*nodes, links=()):
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    return {"version": 1, "state": {"lastNodeId": 10, "lastLinkId": len(links)}, "nodes": list(nodes),
            "links": [dict(zip(keys, link, strict=True)) for link in links]}  # fmt: skip


@pytest.mark.parametrize("shape", [v04, v1], ids=["v0.4-arrays", "v1-objects"])
def test_ui_modes_and_types_from_links(shape):
    workflow = shape(
        ui_node(1, "LoadImage", ["a.png", "image"]),
        ui_port(2, "image"),
        ui_node(3, "ImageInvert", inputs=["image"]),
        ui_port(4, "inverted"),
        ui_port(5, "mask"),
        ui_node(6, "MaskToImage", inputs=["mask"]),
        ui_port(7, "unused"),
        links=[(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "IMAGE"), (3, 3, 0, 4, 0, "IMAGE"), (4, 5, 0, 6, 0, "MASK")],
    )
    assert detect_format(workflow) == "ui"
    found = {p.node_id: (p.uid, p.mode, p.type) for p in find_ports(workflow)}
    assert found == {
        "2": ("image", PASSTHRU, "IMAGE"),
        "4": ("inverted", OUTPUT, "IMAGE"),
        "5": ("mask", INPUT, "MASK"),
        "7": ("unused", UNCONNECTED, "*"),
    }


def test_ui_muted_and_bypassed_nodes_do_not_count():
    workflow = v04(
        ui_node(1, "LoadImage", mode=2),  # muted: its link into the port carries nothing
        ui_port(2, "image"),
        ui_node(3, "ImageInvert", inputs=["image"]),
        ui_port(4, "bypassed", mode=4),
        links=[(1, 1, 0, 2, 0, "IMAGE"), (2, 2, 0, 3, 0, "IMAGE"), (3, 3, 0, 4, 0, "IMAGE")],
    )
    assert {p.node_id: p.mode for p in find_ports(workflow)} == {"2": INPUT}


def test_ui_link_into_a_widget_input_is_not_an_incoming_value():
    # Newer frontends list widgets as inputs too; a PrimitiveNode driving the uid widget does not make an entry.
    workflow = v04(
        ui_node(1, "PrimitiveNode", ["image"]),
        ui_port(2, "image", inputs=("unique_id", "tags", "value")),
        ui_node(3, "ImageInvert", inputs=["image"]),
        links=[(1, 1, 0, 2, 0, "STRING"), (2, 2, 0, 3, 0, "IMAGE")],
    )
    (found,) = find_ports(workflow)
    assert found.mode is INPUT


def test_ui_port_feeding_several_nodes():
    workflow = v1(
        ui_port(1, "image"),
        ui_node(2, "ImageInvert", inputs=["image"]),
        ui_node(3, "SaveImage", inputs=["images"]),
        links=[(1, 1, 0, 2, 0, "IMAGE"), (2, 1, 0, 3, 0, "IMAGE")],
    )
    assert modes(workflow) == {"1": ("image", INPUT)}


# --- problems -----------------------------------------------------------------------------------------------------


def test_empty_uid_and_shared_output_uid_are_reported_together_with_node_ids():
    graph = {
        "1": node("EmptyImage"),
        "2": port("result", ["1", 0]),
        "3": port("result", ["1", 0]),
        "4": port("", ["1", 0]),
        "5": port("image"),  # two INPUT ports may share a uid: one value feeds both
        "6": port("image"),
        "7": node("ImageInvert", image=["5", 0]),
        "8": node("ImageInvert", image=["6", 0]),
    }
    with pytest.raises(PortError) as caught:
        validate_ports(find_ports(graph))
    assert caught.value.problems == [
        "DiscomfortPort node 4 has an empty unique_id",
        "ports 2, 3 are all downstream-most ports of uid 'result', so each would be its exit; a uid leaves a body "
        "through one port: link one into the other, or rename one",
    ]


def test_valid_ports_pass_validation():
    validate_ports(find_ports({"1": port("a"), "2": node("X", v=["1", 0]), "3": port("b", ["2", 0])}))


@pytest.mark.parametrize(
    "graph, message",
    [
        ([], "must be a JSON object"),
        ({}, "empty"),
        ({"1": {"inputs": {}}}, "not a ComfyUI workflow"),
        ({"nodes": [{"type": "X"}], "links": []}, "malformed node"),
        ({"nodes": [], "links": [[1, 2]]}, "malformed link"),
        ({"nodes": [], "links": [{"id": 1}]}, "missing"),
    ],
)
def test_malformed_graphs_name_the_problem(graph, message):
    with pytest.raises(WorkflowError, match=message):
        find_ports(graph)


def test_is_link_and_parse_tags():
    assert is_link(["3", 0]) and is_link(("3", 1))
    assert not is_link([3, 0]) and not is_link(["3", True]) and not is_link(["3", 0, 1]) and not is_link("30")
    assert parse_tags("a, b,,a , c") == ("a", "b", "c")
    assert parse_tags(None) == ()


def test_api_port_types_come_from_node_definitions():
    from discomfort.workflow.nodedefs import node_def

    encode_inputs = {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}}
    defs = {"EmptyImage": node_def("EmptyImage", {"required": {"width": ("INT", {})}}, ["IMAGE"]),
            "VAEEncode": node_def("VAEEncode", encode_inputs, ["LATENT"])}  # fmt: skip
    graph = {"1": node("EmptyImage", width=8), "2": port("image", ["1", 0]), "3": port("vae"),
             "4": node("VAEEncode", pixels=["2", 0], vae=["3", 0])}  # fmt: skip
    assert {p.uid: p.type for p in find_ports(graph, defs=defs)} == {"image": "IMAGE", "vae": "VAE"}
    assert {p.uid: p.type for p in find_ports(graph)} == {"image": "*", "vae": "*"}
