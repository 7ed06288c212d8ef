"""The `discomfort` command: a thin shell over the embedded runtime that maps errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import ComfyNotFoundError, DiscomfortError, ExecutionError, WorkflowError

EXIT_OK = 0
EXIT_FAILED = 1  # the workflow ran and a node failed
EXIT_BAD_INPUT = 2  # the workflow or the arguments are wrong
EXIT_NO_COMFY = 3  # no ComfyUI to run on


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discomfort",
        description="Run ComfyUI workflows headless on an embedded ComfyUI (no server, no browser).",
        epilog="ComfyUI is taken from --comfyui or $COMFYUI_PATH. Exit codes: 0 done, 1 a node failed, "
        "2 bad workflow or arguments, 3 no ComfyUI found.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show ComfyUI's own log")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a workflow (API format) and save its images",
        description="Run a workflow saved with ComfyUI's 'Save (API)' and write its images.",
    )
    run.add_argument("workflow", type=Path, help="the workflow file (API-format JSON)")
    run.add_argument(
        "-o", "--output", type=Path, default=Path("output"), help="folder for saved images (default: ./output)"
    )
    run.add_argument("--comfyui", type=Path, help="the ComfyUI folder to boot (default: $COMFYUI_PATH)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # ComfyUI logs every optional node pack it could not import; that is noise unless asked for.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger(__package__).setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return _run(args)
    except ComfyNotFoundError as error:
        print(f"discomfort: {error}", file=sys.stderr)
        return EXIT_NO_COMFY
    except WorkflowError as error:
        print(f"discomfort: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ExecutionError as error:
        print(f"discomfort: {error}", file=sys.stderr)
        return EXIT_FAILED
    except DiscomfortError as error:
        print(f"discomfort: {error}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    from .executor.embedded import boot
    from .workflow.files import load_prompt

    prompt = load_prompt(args.workflow)
    started = time.perf_counter()
    comfy = boot(args.comfyui, output_directory=args.output)
    booted = time.perf_counter()
    result = comfy.run(prompt)
    finished = time.perf_counter()
    images = result.images()
    for image in images:
        print(Path(args.output) / image.get("subfolder", "") / image["filename"])
    print(
        f"done: {len(images)} image(s) in {args.output} "
        f"(ComfyUI boot {booted - started:.1f} s, run {finished - booted:.2f} s)",
        file=sys.stderr,
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
