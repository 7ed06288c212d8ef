"""The frontend extension (web/) in ComfyUI's real frontend, in Debian's chromium, against the session server.

Screenshots go to each test's tmp_path (pytest keeps the last runs under its basetemp, e.g.
/tmp/pytest-of-$USER/pytest-current/<test>0/). Every test ends by checking that nothing the extension ran logged a
console error.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import SETTINGS

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_workflows"
LOCK = REPO / "tools" / "requirements.lock"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


# --- helpers --------------------------------------------------------------------------------------------------------


def node_of(ui, node_id: int, body: str):
    """Run `body` with `node` bound to the node `node_id` of the graph on screen."""
    return ui.js(f"const node = app.graph.getNodeById(arg); {body}", node_id)


def loop_sockets(ui, node_id: int) -> dict:
    return node_of(
        ui, node_id,
        "return {outputs: node.outputs.map((o) => [o.name, o.label ?? null, o.type]),"
        " inputs: node.inputs.filter((i) => !i.widget).map((i) => [i.name, i.label ?? null, i.type])};",
    )  # fmt: skip


# --- tests ---------------------------------------------------------------------------------------------------------


def test_the_extension_registers_once_with_its_settings_and_commands(ui):
    found = ui.js(
        "const ours = app.extensions.filter((e) => e.name.startsWith('Discomfort'));"
        "return {names: ours.map((e) => e.name), settings: ours.flatMap((e) => e.settings.map((s) => s.id)),"
        " commands: app.extensionManager.command.commands.map((c) => c.id)"
        "  .filter((id) => id.startsWith('Discomfort'))};"
    )
    assert found["names"] == ["Discomfort.Loops"]
    assert sorted(found["settings"]) == sorted(SETTINGS)
    assert {"Discomfort.WrapInLoop", "Discomfort.SelectLoopBody", "Discomfort.LoopMenu"} <= set(found["commands"])


def test_port_badges_show_mode_uid_and_role(ui, tmp_path):
    ui.load(example("refine_until_settled"))
    badges = ui.badges()
    assert "PASSTHRU · image · entry" in badges["4"]
    assert "OUTPUT · image · exit" in badges["6"]
    assert "OUTPUT · settled · exit" in badges["8"]
    assert not [text for text in badges["5"] if "·" in text]  # not a port
    ui.screenshot(tmp_path / "refine.png")


def test_badges_follow_link_and_uid_changes_and_warn(ui):
    ui.load(example("refine_until_settled"))
    # A preview of the exit (issue 13's case): the exit becomes PASSTHRU and stays the exit.
    ui.js(
        "const preview = LiteGraph.createNode('PreviewImage'); preview.pos = [1600, 0]; app.graph.add(preview);"
        "app.graph.getNodeById(6).connect(0, preview, 0);"
    )
    ui.settle()
    badges = ui.badges()
    assert "PASSTHRU · image · exit" in badges["6"]
    # A second exit for one uid, and an empty uid: both flagged on the ports at fault.
    ui.js(
        "const extra = LiteGraph.createNode('DiscomfortPort'); extra.pos = [1300, 700]; app.graph.add(extra);"
        "extra.widgets.find((w) => w.name === 'unique_id').value = 'settled';"
        "extra.widgets.find((w) => w.name === 'tags').value = 'loop';"
        "app.graph.getNodeById(7).connect(1, extra, 0);"
        "const entry = app.graph.getNodeById(4).widgets.find((w) => w.name === 'unique_id');"
        "entry.value = ''; entry.callback?.('');"
    )
    ui.settle()
    badges = ui.badges()
    extra = max(int(node_id) for node_id in badges)
    assert any(text.startswith("⚠ uid 'settled' has 2 exits") for text in badges["8"])
    assert any(text.startswith("⚠ uid 'settled' has 2 exits") for text in badges[str(extra)])
    assert "PASSTHRU · no uid" in badges["4"] and "⚠ empty unique_id" in badges["4"]
    colours = ui.js("return app.graph.getNodeById(4).badges.map((b) => (typeof b === 'function' ? b() : b).bgColor)")
    assert colours.count("#b3261e") == 2  # the warning colour, on the mode badge and on the warning


def test_port_sockets_take_the_linked_type_and_refuse_an_image_into_a_vae_input(ui, tmp_path):
    ui.load(example("refine_until_settled"))
    types = ui.js(
        "const port = (id) => app.graph.getNodeById(id);"
        "return [4, 6, 8].map((id) => [port(id).inputs[0].type, port(id).outputs[0].type]);"
    )
    # The entry takes what its consumers need and gives what feeds it; the exits give what feeds them.
    assert types == [["IMAGE", "IMAGE"], ["*", "IMAGE"], ["*", "BOOLEAN"]]
    refused = ui.js(
        "const decode = LiteGraph.createNode('VAEDecode'); decode.pos = [1700, 0]; app.graph.add(decode);"
        "const blur = app.graph.getNodeById(5);"
        "const viaPort = app.graph.getNodeById(6).connect(0, decode, 'vae');"
        "const linkColour = app.graph.links.get(app.graph.getNodeById(4).outputs[0].links[0]).type;"
        "return {viaPort: viaPort ?? null, vaeLink: decode.inputs.find((i) => i.name === 'vae').link, linkColour};"
    )
    assert refused == {"viaPort": None, "vaeLink": None, "linkColour": "IMAGE"}
    ui.screenshot(tmp_path / "typed.png")


def test_a_loop_shows_the_sockets_in_use_named_by_uid_and_queues_the_backends_positions(ui, comfy):
    from discomfort.executor.node_defs import LiveNodeDefs
    from discomfort.workflow.convert import ui_to_api

    ui.load(example("refine_until_settled"))
    sockets = loop_sockets(ui, 10)
    assert sockets["outputs"] == [["value_1", "image", "IMAGE"], ["iterations", "iterations", "INT"]]
    assert sockets["inputs"] == [["value_1", "image", "IMAGE"]]
    # Accumulating the image adds its socket, in the backend's order; a preview takes it.
    node_of(
        ui, 10, "const w = node.widgets.find((w) => w.name === 'accumulate'); w.value = 'image'; w.callback?.('image');"
    )
    ui.settle()
    ui.js(
        "const loop = app.graph.getNodeById(10); const preview = LiteGraph.createNode('PreviewImage');"
        "preview.pos = [1100, 1100]; app.graph.add(preview);"
        "loop.connect(loop.outputs.findIndex((o) => o.name === 'accumulated_1'), preview, 0);"
        "window.__preview = preview.id;"
    )
    ui.settle()
    sockets = loop_sockets(ui, 10)
    assert [output[:2] for output in sockets["outputs"]] == [
        ["value_1", "image"], ["accumulated_1", "image (all)"], ["iterations", "iterations"]
    ]  # fmt: skip
    queued = ui.js("const p = await app.graphToPrompt(); return [p.output, window.__preview];")
    prompt, preview = queued
    backend = ui.js("return app.graph.getNodeById(10).constructor.nodeData.output_name")
    assert prompt[str(preview)]["inputs"]["images"] == ["10", backend.index("accumulated_1")]
    assert prompt["11"]["inputs"]["images"] == ["10", backend.index("value_1")]
    # The saved workflow converts to the same prompt in Python, and opens again with the same sockets.
    saved = ui.js("return app.graph.serialize()")
    assert ui_to_api(saved, LiveNodeDefs())[str(preview)]["inputs"]["images"] == ["10", backend.index("accumulated_1")]
    ui.load(saved)
    assert loop_sockets(ui, 10) == sockets
    again = ui.js("return (await app.graphToPrompt()).output")
    assert again[str(preview)]["inputs"]["images"] == ["10", backend.index("accumulated_1")]
    # Unlisting a uid drops its unlinked socket; a linked one stays, labelled unused.
    node_of(ui, 10, "const w = node.widgets.find((w) => w.name === 'uids'); w.value = ''; w.callback?.('');")
    ui.settle()
    assert [output[:2] for output in loop_sockets(ui, 10)["outputs"]] == [
        ["value_1", "value_1 (unused)"], ["accumulated_1", "image (all)"], ["iterations", "iterations"]
    ]  # fmt: skip


def pixels_beside_nodes(ui, tmp_path: Path, name: str) -> dict[str, tuple[int, int, int]]:
    """The screen's colour just left of each node, inside the margin a body's tint covers."""
    from PIL import Image

    points = ui.js(
        "const box = app.canvas.canvas.getBoundingClientRect(); const out = {};"
        "for (const n of app.graph.nodes) {"
        "  const [x, y] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] - 7, n.pos[1] + n.size[1] / 2]);"
        "  out[n.id] = [Math.round(box.left + x), Math.round(box.top + y)]; }"
        "return out;"
    )
    image = Image.open(ui.screenshot(tmp_path / name)).convert("RGB")
    return {node_id: image.getpixel(tuple(point)) for node_id, point in points.items()}


def tinted_nodes(ui, tmp_path: Path, name: str) -> set[str]:
    """The nodes beside which the screen changes when the body highlight is switched off."""
    tinted = pixels_beside_nodes(ui, tmp_path, f"{name}.png")
    ui.set_setting("Discomfort.BodyHighlight", False)
    plain = pixels_beside_nodes(ui, tmp_path, f"{name}-no-highlight.png")
    ui.set_setting("Discomfort.BodyHighlight", True)
    return {
        node_id
        for node_id in plain
        if max(abs(a - b) for a, b in zip(tinted[node_id], plain[node_id], strict=True)) > 6
    }


def test_the_body_highlight_covers_exactly_the_body(ui, tmp_path):
    ui.load(example("refine_until_settled"))
    ui.js("app.canvas.ds.scale = 0.8; app.canvas.ds.offset = [120, 260]; app.canvas.setDirty(true, true)")
    regions = ui.js(
        "const { hullRegions } = await ext('hull'); const { GraphState } = await ext('state');"
        "const state = new GraphState(() => app.graph);"
        "return hullRegions(state.current(), app.graph).map((r) => ({loop: r.loopId, run: r.run.length,"
        " once: r.once.length}));"
    )
    body = ui.analysis()["loops"]["10"]
    assert regions == [{"loop": "10", "run": len(body["nodes"]) - len(body["lighter"]), "once": len(body["lighter"])}]
    assert tinted_nodes(ui, tmp_path, "highlight") == set(body["nodes"])


def run(
    ui,
    until: str = "execution_success|execution_error|execution_interrupted",
    timeout_ms: int = 120_000,
    during: str = "",
) -> str:
    """Queue the graph on screen as the Run button does; `during` runs in the page once the run is under way.
    Returns the event that ended it."""
    return ui.js(
        "const ends = arg.until.split('|'); let finish;"
        "const ended = new Promise((resolve) => { finish = resolve; });"
        "const listeners = ends.map((name) => [name, () => finish(name)]);"
        "for (const [name, listener] of listeners) api.addEventListener(name, listener);"
        "try {"
        "  await app.queuePrompt(0, 1);"
        "  if (arg.during) await (new Function('app', 'api', `return (async () => { ${arg.during} })()`))(app, api);"
        "  const timer = new Promise((_, fail) =>"
        "    setTimeout(() => fail(new Error('the run did not end')), arg.timeout));"
        "  return await Promise.race([ended, timer]);"
        "} finally { for (const [name, listener] of listeners) api.removeEventListener(name, listener); }",
        {"until": until, "timeout": timeout_ms, "during": during},
    )


def counter_text(ui, node_id) -> str:
    texts = [text for text in ui.badges()[str(node_id)] if text[:1] in "↻✓■✗"]
    assert len(texts) == 1, ui.badges()[str(node_id)]
    return texts[0]


def test_a_finished_loop_says_where_it_settled_and_how_fast(ui, tmp_path):
    ui.load(example("refine_until_settled"))
    assert run(ui) == "execution_success"
    ui.settle()
    text = counter_text(ui, 10)
    assert text.startswith("✓ settled after ") and text.endswith("/it"), text
    done = int(text.removeprefix("✓ settled after ").split("/")[0])
    assert 2 <= done < 40
    ui.screenshot(tmp_path / "settled.png")


def test_after_a_run_the_bodys_save_image_shows_its_images(ui):
    ui.load(example("refine_until_settled"))
    assert run(ui) == "execution_success"
    ui.settle()
    # Every iteration's image, each added as its iteration ran.
    shown = ui.js("return (app.nodeOutputs?.['9']?.images ?? []).length")
    settled = int(counter_text(ui, 10).removeprefix("✓ settled after ").split("/")[0])
    assert shown == settled >= 2


def stalling_loop(iterations: int, fail_at: int = -1) -> dict:
    """A loop whose body takes 50 ms an iteration (and fails at the iteration `fail_at`)."""
    return {
        "1": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "iteration", "tags": "loop"}},
        "2": {"class_type": "DiscomfortTestFailAt",
              "inputs": {"value": ["1", 0], "index": ["1", 0], "fail_at": fail_at}},
        "3": {"class_type": "DiscomfortTestStall", "inputs": {"value": ["2", 0], "seconds": 0.05, "log": ""}},
        "4": {"class_type": "DiscomfortPort", "inputs": {"unique_id": "step", "tags": "loop", "value": ["3", 0]}},
        "5": {"class_type": "DiscomfortLoop", "inputs": {"body": "loop", "iterations": iterations, "uids": "step",
                                                         "accumulate": "", "stop_when": ""}},
    }  # fmt: skip


def test_a_cancelled_loop_says_where_it_stopped(ui, tmp_path):
    ui.js("app.loadApiJson(arg, 'cancel.json')", stalling_loop(2000))
    ui.settle()
    during = (
        "const loop = app.graph.getNodeById(5);"
        "const seen = () => (loop.badges ?? []).map((b) => (typeof b === 'function' ? b() : b).text).join(' ');"
        "for (let i = 0; i < 600 && !/↻ ([3-9]|\\d\\d+)\\//.test(seen()); i++)"
        "  await new Promise((r) => setTimeout(r, 50));"
        "await api.interrupt();"
    )
    assert run(ui, during=during) == "execution_interrupted"
    ui.settle()
    text = counter_text(ui, 5)
    assert text.startswith("■ cancelled at ") and "/2000" in text, text
    assert int(text.removeprefix("■ cancelled at ").split("/")[0]) >= 3
    ui.screenshot(tmp_path / "cancelled.png")


def test_a_failed_loop_says_which_iteration_failed(ui):
    ui.js("app.loadApiJson(arg, 'fail.json')", stalling_loop(8, fail_at=5))
    ui.settle()
    assert run(ui) == "execution_error"
    ui.settle()
    assert counter_text(ui, 5).startswith("✗ failed at 6/8")


def newest(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime)
    assert found, f"nothing matches {pattern} in {folder}"
    return found[-1]


def test_wrapping_imageblur_in_a_loop_gives_the_refinement_examples_pixels(ui, server, tmp_path):
    import numpy as np
    from PIL import Image

    refine = example("refine_until_settled")
    ui.load(refine)
    assert run(ui) == "execution_success"
    settled = int(counter_text(ui, 10).removeprefix("✓ settled after ").split("/")[0])
    expected = np.asarray(Image.open(newest(server.base_directory / "output" / "refine", "final_*.png")))
    # The same nodes without ports or loop: the background, the square, the composite, one blur, a save.
    plain = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 96, "batch_size": 1, "color": 0x202040}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0xFFD040}},
        "3": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["1", 0], "source": ["2", 0], "x": 32,
                                                               "y": 32, "resize_source": False}},
        "5": {"class_type": "ImageBlur", "inputs": {"image": ["3", 0], "blur_radius": 2, "sigma": 1.0}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "wrapped/final"}},
    }  # fmt: skip
    ui.js("app.loadApiJson(arg, 'wrap.json')", plain)
    ui.settle()
    ui.js("app.canvas.selectItems([app.graph.getNodeById(5)]);"
          "await app.extensionManager.command.execute('Discomfort.WrapInLoop')")  # fmt: skip
    ui.settle()
    analysis = ui.analysis()
    ((loop_id, loop),) = analysis["loops"].items()
    assert loop["problems"] == []
    assert set(loop["entries"]) == set(loop["exits"]) == {"image"}  # the IMAGE pair in and out is carried
    assert {analysis["ports"][i]["mode"] for i in loop["entries"]["image"] + loop["exits"]["image"]} == {
        "PASSTHRU", "OUTPUT"}  # fmt: skip
    wired = node_of(ui, 11, "const link = app.graph.links.get(node.inputs[0].link);"
                    "return [String(link.origin_id),"
                    " app.graph.getNodeById(link.origin_id).outputs[link.origin_slot].name];")  # fmt: skip
    assert wired == [loop_id, "value_1"]
    ui.fit()
    ui.screenshot(tmp_path / "wrapped.png")
    node_of(ui, int(loop_id), f"const w = node.widgets.find((w) => w.name === 'iterations'); w.value = {settled};")
    assert run(ui) == "execution_success"
    got = np.asarray(Image.open(newest(server.base_directory / "output" / "wrapped", "final_*.png")))
    assert np.array_equal(got, expected)


def menu_texts(items) -> list:
    return [item and item.get("content") for item in items]


def test_pickers_offer_the_bodys_exit_uids_and_checks_flag_the_loop_before_it_runs(ui):
    ui.load(example("refine_until_settled"))
    menu = node_of(ui, 10, "return app.extensions.find((e) => e.name === 'Discomfort.Loops').getNodeMenuItems(node)"
                   ".filter(Boolean).map((item) => ({content: item.content, options: (item.submenu?.options ?? [])"
                   ".map((o) => o.content)}));")  # fmt: skip
    by_name = {item["content"]: item["options"] for item in menu}
    assert by_name["Discomfort: Values (uids)"] == ["☑ image", "☐ settled"]
    assert by_name["Discomfort: Accumulate"] == ["☐ image", "☐ settled"]
    assert by_name["Discomfort: Stop when"] == ["○ (never: run every iteration)", "○ image", "● settled"]
    assert "Discomfort: Select loop body" in by_name
    # Picking from a list sets the widget, and the sockets follow.
    node_of(ui, 10, "const item = app.extensions.find((e) => e.name === 'Discomfort.Loops').getNodeMenuItems(node)"
            ".find((i) => i?.content === 'Discomfort: Accumulate'); item.submenu.options[1].callback();")  # fmt: skip
    ui.settle()
    assert node_of(ui, 10, "return node.widgets.find((w) => w.name === 'accumulate').value") == "settled"
    assert ["accumulated_1", "settled (all)", "*"] in loop_sockets(ui, 10)["outputs"]
    # A stop_when no exit gives and a body no port carries are flagged on the loop node.
    node_of(
        ui, 10, "const w = node.widgets.find((w) => w.name === 'stop_when'); w.value = 'done'; w.callback?.('done');"
    )
    ui.settle()
    assert "⚠ stop_when: no exit gives 'done'" in ui.badges()["10"]
    node_of(ui, 10, "const w = node.widgets.find((w) => w.name === 'body'); w.value = 'nothing'; w.callback?.('x');")
    ui.settle()
    assert "⚠ no DiscomfortPort is tagged 'nothing'" in ui.badges()["10"]


def test_select_body_and_add_ports_from_the_loop_node(ui):
    ui.load(example("refine_until_settled"))
    selected = ui.js(
        "app.canvas.selectItems([app.graph.getNodeById(10)]);"
        "await app.extensionManager.command.execute('Discomfort.SelectLoopBody');"
        "return [...app.canvas.selectedItems].map((n) => String(n.id));"
    )
    assert sorted(selected, key=int) == ui.analysis()["loops"]["10"]["nodes"]
    # The loop's toolbox offers its menu; adding an entry port for 'settled' tags it with the body.
    assert ui.js("return app.extensions.find((e) => e.name === 'Discomfort.Loops')"
                 ".getSelectionToolboxCommands(app.graph.getNodeById(10))") == [
        "Discomfort.SelectLoopBody", "Discomfort.LoopMenu"]  # fmt: skip
    ui.js("app.canvas.selectItems([app.graph.getNodeById(10)]);"
          "await app.extensionManager.command.execute('Discomfort.LoopMenu');")  # fmt: skip
    ui.settle()
    entries = ui.js(
        "return [...document.querySelectorAll('.litecontextmenu .litemenu-entry')].map((e) => e.textContent)"
    )
    assert "Add entry port" in entries and "Stop when" in entries
    ui.js("document.querySelectorAll('.litecontextmenu').forEach((menu) => menu.remove())")
    count = ui.js("return app.graph.nodes.length")
    node_of(ui, 10, "app.extensions.find((e) => e.name === 'Discomfort.Loops').getNodeMenuItems(node)"
            ".find((i) => i?.content === 'Discomfort: Add entry port').submenu.options"
            ".find((o) => o.content === \"entry port for 'settled'\").callback();")  # fmt: skip
    ui.settle()
    added = ui.js("const n = app.graph.nodes.at(-1); return [n.comfyClass, ...n.widgets.map((w) => w.value)]")
    assert ui.js("return app.graph.nodes.length") == count + 1
    assert added == ["DiscomfortPort", "settled", "loop"]


def test_settings_switch_badges_highlight_and_counter_off(ui):
    ui.load(example("refine_until_settled"))
    assert "PASSTHRU · image · entry" in ui.badges()["4"]
    ui.set_setting("Discomfort.Badges", False)
    assert not [text for text in ui.badges()["4"] if "·" in text]
    ui.set_setting("Discomfort.IterationCounter", False)
    assert run(ui) == "execution_success"
    ui.settle()
    assert not [text for text in ui.badges()["10"] if text[:1] in "↻✓■✗"]
    ui.set_setting("Discomfort.IterationCounter", True)
    assert counter_text(ui, 10).startswith("✓ settled after")


def vue_rereads_badges(ui) -> bool:
    """Whether this frontend's Vue renderer shows badges set on a node after it drew the node: frontend 1.49's
    takes a node's badges once, when it mounts the node (its own price badges are computed, not set)."""
    probe = ui.js(
        "const node = LiteGraph.createNode('PreviewImage'); const [x, y] = app.canvas.ds.visible_area;"
        "node.pos = [x + 20, y + 20]; app.graph.add(node); return node.id;"  # on screen: Vue draws only what shows
    )
    element = f"document.querySelector('[data-node-id=\"{probe}\"]')"
    assert ui.until(lambda: ui.js(f"return !!{element}"), bool), "the Vue renderer did not draw the probe node"
    ui.js(
        "const node = app.graph.getNodeById(arg);"
        "(await ext('badges')).setBadges(node, 'check', [{text: 'badge probe', bgColor: '#000000'}]);",
        probe,
    )
    shown = ui.until(lambda: ui.js(f"return {element}?.innerText ?? ''"), lambda text: "badge probe" in text, 3)
    ui.js("app.graph.remove(app.graph.getNodeById(arg))", probe)
    return "badge probe" in shown


def test_nodes_2_0_shows_the_same_badges_sockets_and_highlight_live(ui, tmp_path):
    ui.set_setting("Comfy.VueNodes.Enabled", True)
    ui.load(example("refine_until_settled"))
    assert ui.js("return document.querySelectorAll('[data-node-id]').length") >= 10  # the Vue renderer is on
    if vue_rereads_badges(ui):
        text = lambda: ui.js("return document.querySelector('.graph-canvas-container, body').innerText")  # noqa: E731
        badges = ("PASSTHRU · image · entry", "OUTPUT · image · exit", "OUTPUT · settled · exit")
        shown = ui.until(text, lambda shown: all(badge in shown for badge in badges))  # Vue draws them when it can
        for badge in badges:
            assert badge in shown
        ui.js(
            "const preview = LiteGraph.createNode('PreviewImage'); preview.pos = [1600, 0]; app.graph.add(preview);"
            "app.graph.getNodeById(6).connect(0, preview, 0);"
        )
        assert "PASSTHRU · image · exit" in ui.until(text, lambda shown: "PASSTHRU · image · exit" in shown)
    else:
        # The frontend the runtime is provisioned with must show them; another may not (README, Compatibility).
        version = ui.js("return window.__COMFYUI_FRONTEND_VERSION__")
        assert f"comfyui_frontend_package=={version}" not in LOCK.read_text(), f"frontend {version}"
        warnings.warn(f"frontend {version}'s Nodes 2.0 shows badges only as they were when it drew a node: "
                      "badges not checked there, sockets and highlight are", stacklevel=1)  # fmt: skip
    slots = ui.js("return [...document.querySelectorAll('[data-node-id=\"10\"] span.text-node-component-slot-text')]"
                  ".map((s) => s.innerText.trim())"
                  ".filter(Boolean)")  # fmt: skip
    assert slots == ["image", "image", "iterations"], slots  # value_1 in, value_1 and iterations out
    # A fixed view, so both screenshots show every node at the same place.
    ui.js("app.canvas.ds.scale = 0.6; app.canvas.ds.offset = [140, 300]; app.canvas.setDirty(true, true)")
    ui.wait(800)
    assert set(ui.analysis()["loops"]["10"]["nodes"]) <= tinted_nodes(ui, tmp_path, "nodes-2.0")
