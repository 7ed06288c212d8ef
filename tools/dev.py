"""One entry point for working on Discomfort: provisions the runtime on first use, then runs the asked-for job.

python3 tools/dev.py demo        run the example loop headless on the embedded ComfyUI, images to out/demo
python3 tools/dev.py test [ARGS] run the test suite (ARGS go to pytest)
python3 tools/dev.py comfy-suite [ARGS]
                                 ComfyUI's own execution tests with Discomfort installed (--server-wait SECONDS:
                                 how long each of its servers may take to start, default 300)
python3 tools/dev.py bench [--quick] [--repeats N]
                                 loop strategies, the codec, loop preparation and the Ray fan-out measured side
                                 by side (bench/loops.py, codec.py, prepare.py, fanout.py); tables and ratios printed,
                                 results in bench/results
python3 tools/dev.py lint        ruff over the repository
python3 tools/dev.py python ARGS run the runtime's Python with Discomfort importable
python3 tools/dev.py provision   build the runtime if needed and print where it is
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provision import Runtime, ensure_browser, ensure_runtime

REPO = Path(__file__).resolve().parent.parent
DEMO_WORKFLOW = REPO / "example_workflows" / "refine_until_settled.json"
PLUGINS = REPO / "tools" / "pytest_plugins"


def importable_env(runtime: Runtime) -> dict[str, str]:
    """The runtime's environment, with this checkout importable as `discomfort` whatever its folder is called."""
    link_parent = REPO / "build" / "pythonpath"
    link = link_parent / "discomfort"
    link_parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == REPO):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO, target_is_directory=True)
    env = runtime.env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(link_parent), env.get("PYTHONPATH")]))
    return env


def run(runtime: Runtime, *args: str) -> int:
    return subprocess.call([str(runtime.python), *args], env=importable_env(runtime), cwd=REPO)


def comfy_suite(runtime: Runtime, extra: list[str]) -> int:
    """ComfyUI's tests/execution against a copy of the runtime's ComfyUI with this checkout in its custom_nodes:
    proof that loading Discomfort changes nothing in ComfyUI's own behaviour."""
    if not (runtime.comfyui / "tests" / "execution").is_dir():
        print(f"{runtime.comfyui} has no tests/execution", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="discomfort-comfy-suite-") as scratch:
        root = Path(scratch) / "ComfyUI"
        # A copy, so the suite's servers write their output, user folder and database there, not in the cache.
        shutil.copytree(runtime.comfyui, root, symlinks=True,
                        ignore=shutil.ignore_patterns("output", "temp", "user", "__pycache__", "*.db"))  # fmt: skip
        (root / "custom_nodes").mkdir(exist_ok=True)
        (root / "custom_nodes" / "discomfort").symlink_to(REPO, target_is_directory=True)
        env = importable_env(runtime)
        # The suite starts its servers as `python main.py`: the runtime's python must come first on PATH.
        env["PATH"] = os.pathsep.join([str(runtime.python.parent), env.get("PATH", "")])
        # Its fixtures give a server 20 s to come up; the plugin waits longer, without editing the suite.
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), env["PYTHONPATH"]])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [str(runtime.python), "-m", "pytest", "tests/execution", "--port", str(port), "--skip-timing-checks",
                   "-p", "no:cacheprovider", "-p", "comfy_server_wait", "-q", *extra]  # fmt: skip
        return subprocess.call(command, cwd=root, env=env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in ("demo", "test", "comfy-suite", "bench", "lint", "python", "provision"):
        print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    runtime = ensure_runtime()
    if command == "provision":
        print(f"python  {runtime.python}\ncomfyui {runtime.comfyui}")
        return 0
    if command == "demo":
        output = rest[0] if rest else str(REPO / "out" / "demo")
        return run(runtime, "-m", "discomfort", "run", str(DEMO_WORKFLOW), "--output", output)
    if command == "test":
        ensure_browser()  # the browser tests say what is missing if this could not install it
        return run(runtime, "-m", "pytest", *rest)
    if command == "comfy-suite":
        return comfy_suite(runtime, rest)
    if command == "bench":
        scripts = [REPO / "bench" / name for name in ("loops.py", "codec.py", "prepare.py", "fanout.py")]
        return next((code for script in scripts if (code := run(runtime, str(script), *rest))), 0)
    if command == "lint":
        return run(runtime, "-m", "ruff", "check", str(REPO), *rest)
    return run(runtime, *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
