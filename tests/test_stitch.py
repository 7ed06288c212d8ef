"""A workflow's interface, execution order, and stitching workflows together (pure: no ComfyUI)."""

from __future__ import annotations

import pytest

from discomfort.errors import PortError, WorkflowError
from discomfort.ports import PortMode, execution_order, find_ports, interface
from discomfort.ports.stitch import stitch_api, stitch_ui


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def port(uid, value=None):
    return node("DiscomfortPort", unique_id=uid, tags="", **({"value": value} if value else {}))


def producer():
    """LoadImage -> [image PASSTHRU] -> Blur -> [blurred OUTPUT]"""
    return {"1": node("LoadImage", image="a.png"), "2": port("image", ["1", 0]),
            "3": node("ImageBlur", image=["2", 0]), "4": port("blurred", ["3", 0])}  # fmt: skip


def consumer():
    """[blurred INPUT] -> Invert -> [result OUTPUT], and Save"""
    return {"1": port("blurred"), "2": node("ImageInvert", image=["1", 0]), "3": port("result", ["2", 0]),
            "4": node("SaveImage", images=["2", 0])}  # fmt: skip


def test_interface_takes_gives_and_order():
    found = interface(producer())
    assert list(found.takes) == ["image"] and set(found.gives) == {"image", "blurred"}
    assert found.gives["image"].mode is PortMode.PASSTHRU  # given: no OUTPUT port has that uid
    both = {**producer(), "5": port("image", ["3", 0])}
    assert interface(both).gives["image"].node_id == "5"  # an OUTPUT wins over a PASSTHRU
    assert [p.node_id for p in interface(both).order][:1] == ["2"]
    order = execution_order(producer())
    assert order.index("1") < order.index("2") < order.index("3") < order.index("4")


def test_cycles_and_dangling_links_are_named():
    cyclic = {"1": node("A", x=["3", 0]), "2": node("B", x=["1", 0]), "3": node("C", x=["2", 0])}
    with pytest.raises(WorkflowError, match="cycle through nodes 1 -> 2 -> 3 -> 1"):
        execution_order(cyclic)
    with pytest.raises(WorkflowError, match=r"\(9 -> 1\) names a node that is not in the workflow"):
        execution_order({"1": node("A", x=["9", 0])})


def test_stitch_api_links_outputs_to_later_inputs():
    stitched = stitch_api([producer(), consumer()], ["load.json", "invert.json"])
    assert stitched["2.1"]["inputs"]["value"] == ["1.4", 0]
    assert stitched["2.2"]["inputs"]["image"] == ["2.1", 0]
    modes = {p.node_id: p.mode for p in find_ports(stitched)}
    assert modes["1.4"] is PortMode.PASSTHRU and modes["2.1"] is PortMode.PASSTHRU
    assert set(interface(stitched).takes) == {"image", "blurred"}  # PASSTHRU ports can take values too


def test_a_uid_given_by_two_files_that_do_not_chain_has_two_exits():
    # c takes `blurred` from b, the nearest file giving it; a's `blurred` leads nowhere, so it is an exit too.
    with pytest.raises(PortError, match=r"ports 1.4, 3.1 are all downstream-most ports of uid 'blurred'"):
        stitch_api([producer(), producer(), consumer()], ["a.json", "b.json", "c.json"])


def ui_port(node_id, uid, x, y, link_in=None, links_out=()):
    return {"id": node_id, "type": "DiscomfortPort", "pos": [x, y], "size": [200, 80], "mode": 0,
            "widgets_values": [uid, ""], "inputs": [{"name": "value", "type": "*", "link": link_in}],
            "outputs": [{"name": "value", "type": "*", "links": list(links_out)}]}  # fmt: skip


def ui_node(node_id, kind, x, y, link_in=None, links_out=()):
    return {"id": node_id, "type": kind, "pos": [x, y], "size": [300, 100], "mode": 0, "widgets_values": [],
            "inputs": [{"name": "image", "type": "IMAGE", "link": link_in}] if link_in else [],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": list(links_out)}]}  # fmt: skip


def ui_producer():
    nodes = [ui_node(1, "LoadImage", 0, 0, links_out=[1]), ui_port(2, "image", 400, 0, link_in=1)]
    return {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "nodes": nodes, "links": [[1, 1, 0, 2, 0, "IMAGE"]],
            "groups": [{"title": "Load", "bounding": [-10, -40, 700, 200]}]}  # fmt: skip


def ui_consumer():
    nodes = [ui_port(7, "image", 100, 500, links_out=[5]), ui_node(8, "ImageInvert", 400, 500, link_in=5)]
    link = {"id": 5, "origin_id": 7, "origin_slot": 0, "target_id": 8, "target_slot": 0, "type": "IMAGE"}
    return {"version": 1, "state": {"lastNodeId": 8, "lastLinkId": 5}, "nodes": nodes, "links": [link]}


def test_stitch_ui_renumbers_links_and_lays_out_below():
    stitched = stitch_ui([ui_producer(), ui_consumer()], ["a.json", "b.json"])
    ids = [n["id"] for n in stitched["nodes"]]
    assert ids == [1, 2, 3, 4] and stitched["last_node_id"] == 4
    link_ids = [link[0] for link in stitched["links"]]
    assert link_ids == [1, 2, 3] and stitched["last_link_id"] == 3
    by_id = {n["id"]: n for n in stitched["nodes"]}
    for link_id, origin, origin_slot, target, target_slot, _ in stitched["links"]:
        assert link_id in by_id[origin]["outputs"][origin_slot]["links"]
        assert by_id[target]["inputs"][target_slot]["link"] == link_id
    assert stitched["links"][-1][1:5] == [2, 0, 3, 0]  # producer's port feeds consumer's port
    assert {p.node_id: p.mode for p in find_ports(stitched)} == {"2": PortMode.PASSTHRU, "3": PortMode.PASSTHRU}
    producer_bottom = max(n["pos"][1] + n["size"][1] for n in stitched["nodes"][:2])
    assert min(n["pos"][1] for n in stitched["nodes"][2:]) >= producer_bottom
    assert stitched["groups"][0]["bounding"][1] == -40 - 0 and stitched["groups"][0]["title"] == "Load"
