"""The frontend extension (web/) in ComfyUI's real frontend, in Debian's chromium, against the session server.

Screenshots go to each test's tmp_path (pytest keeps the last runs under its basetemp, e.g.
/tmp/pytest-of-$USER/pytest-current/<test>0/). Every test ends by checking that nothing the extension ran logged a
console error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import SETTINGS

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_workflows"


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


# --- tests --------------------------------------------------------------------------------------------------------------


def test_the_extension_registers_once_with_its_settings_and_commands(ui):
    found = ui.js(
        "const ours = app.extensions.filter((e) => e.name.startsWith('Discomfort'));"
        "return {names: ours.map((e) => e.name), settings: ours.flatMap((e) => e.settings.map((s) => s.id)),"
        " commands: app.extensionManager.command.commands.map((c) => c.id).filter((id) => id.startsWith('Discomfort'))};"
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
