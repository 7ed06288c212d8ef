"""tools/provision.py against a user's own Python (COMFYUI_PATH): the test tools go into a venv of the project's own
that sees the user's packages, and nothing is installed into the user's Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def site_packages(python: Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return Path(done.stdout.strip())


def tiny_wheel(folder: Path) -> Path:
    """A wheel of a one-module package, made by hand so that installing it needs no index and no build."""
    wheel = folder / "tinytool-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tinytool.py", "MARK = 'from the overlay'\n")
        archive.writestr("tinytool-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinytool\nVersion: 1.0\n")
        archive.writestr(
            "tinytool-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr("tinytool-1.0.dist-info/RECORD", "")
    return wheel


def test_the_tools_go_into_an_overlay_that_sees_the_users_packages(tmp_path):
    user = tmp_path / "user-venv"  # the Python a user's ComfyUI runs on: a venv, as most are
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(user)], check=True)
    python = user / "bin" / "python"
    packages = site_packages(python)
    (packages / "userpkg.py").write_text("MARK = 'the user\\'s'\n")
    # The user has a newer cloudpickle than the one pinned: Discomfort's own dependency is taken from them.
    (packages / "cloudpickle-9.0.dist-info").mkdir()
    (packages / "cloudpickle-9.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: cloudpickle\n"
                                                                     "Version: 9.0\n")  # fmt: skip
    before = sorted(path.name for path in packages.iterdir())
    requirements = tmp_path / "requirements-dev.txt"
    requirements.write_text(f"cloudpickle==3.1.2\n{tiny_wheel(tmp_path)}  # a test tool\n")
    script = (
        "import json, pathlib, sys; sys.path.insert(0, sys.argv[1]); import provision; "
        "provision.DEV_REQUIREMENTS = pathlib.Path(sys.argv[2]); "
        "print(json.dumps({'wanted': provision._tools_wanted(), 'python': str(provision._overlay())}))"
    )
    env = {**os.environ, "DISCOMFORT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([str(python), "-c", script, str(TOOLS), str(requirements)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert [line.split()[0].rsplit("/", 1)[-1] for line in report["wanted"]] == ["tinytool-1.0-py3-none-any.whl"]
    overlay = Path(report["python"])
    assert overlay.is_relative_to(tmp_path / "cache")
    seen = subprocess.run([str(overlay), "-c", "import tinytool, userpkg; print(tinytool.MARK, '|', userpkg.MARK)"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert seen.stdout.strip() == "from the overlay | the user's", seen.stderr
    assert sorted(path.name for path in packages.iterdir()) == before  # nothing installed into the user's Python
