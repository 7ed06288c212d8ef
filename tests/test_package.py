"""The package itself: importable before ComfyUI, pip-installable as `discomfort`, ruff clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_pulls_in_nothing_of_comfyui_or_torch():
    code = (
        "import sys, json, discomfort; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'torch','comfy','execution','nodes','server','folder_paths','numpy'})))"
    )
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout) == []


def test_pip_builds_a_wheel_that_installs_as_discomfort(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("discomfort-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "discomfort/__init__.py" in names
    assert "discomfort/ports/node.py" in names
    assert "discomfort/web/main.js" in names  # WEB_DIRECTORY: ComfyUI serves it from an installed package too
    assert not [name for name in names if name.startswith(("discomfort/tests", "tests/"))]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    code = "import discomfort; print(discomfort.__file__); print(sorted(discomfort.NODE_CLASS_MAPPINGS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(target), "PATH": os.environ["PATH"]}, cwd=tmp_path)  # fmt: skip
    file, node_names = out.stdout.splitlines()
    assert file.startswith(str(target))
    assert "DiscomfortPort" in node_names


def test_every_node_id_starts_with_discomfort():
    import discomfort

    assert all(name.startswith("Discomfort") for name in discomfort.NODE_CLASS_MAPPINGS)
    assert set(discomfort.NODE_DISPLAY_NAME_MAPPINGS) == set(discomfort.NODE_CLASS_MAPPINGS)


def test_without_pybase64_the_nodes_load_and_envelopes_use_the_standard_library(tmp_path):
    import discomfort

    # ComfyUI-Manager may install the pack without its optional speed-up: every node must still load.
    code = (
        "import sys; sys.modules['pybase64'] = None\n"  # makes `import pybase64` fail, as if it were not installed
        "import torch, discomfort\n"
        "from discomfort.serialization import decode, dumps, encode, loads\n"
        f"assert sorted(discomfort.NODE_CLASS_MAPPINGS) == {sorted(discomfort.NODE_CLASS_MAPPINGS)!r}\n"
        "value = {'samples': torch.arange(6.0).reshape(2, 3), 'raw': b'\\x00\\xff'}\n"
        "back = decode(encode(value))\n"
        "assert torch.equal(back['samples'], value['samples']) and back['raw'] == value['raw']\n"
        "assert torch.equal(loads(dumps(torch.ones(2)))[...], torch.ones(2))\n"
        "print('ok')\n"
    )
    env = {**os.environ, "DISCOMFORT_KEY_FILE": str(tmp_path / "key")}
    env.pop("COMFYUI_PATH", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_comfy_registry_and_comfyui_manager_find_what_they_read():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    # ComfyUI-Manager installs a node pack's requirements.txt; pip and the registry read pyproject: one list.
    requirements = (REPO / "requirements.txt").read_text().split()
    assert {line.split(">=")[0] for line in requirements} == {"cloudpickle", "pybase64"}
    assert project["project"]["dynamic"] == ["dependencies"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert project["project"]["urls"]["Repository"].startswith("https://github.com/")
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"].startswith(">=0.3.75")
