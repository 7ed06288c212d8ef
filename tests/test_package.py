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
