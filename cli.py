"""The `discomfort` command: a thin shell over the Python API that maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

from .errors import (
    ComfyNotFoundError,
    DiscomfortError,
    ExecutionError,
    LoopError,
    SerializationError,
    SettingsError,
    WorkflowError,
)
from .serialization.checkpoint import CheckpointError
from .serialization.stores import DEFAULT_BUDGET_MIB

EXIT_OK = 0
EXIT_FAILED = 1  # the workflow ran and a node failed
EXIT_BAD_INPUT = 2  # the workflow or the arguments are wrong
EXIT_NO_COMFY = 3  # no ComfyUI to run on
EXIT_INTERRUPTED = 130

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}

EPILOG = """\
examples:
  discomfort run refine.json --iterations 8 --input image=photo.png -o out/
  discomfort run load.json blur.json -n 5 --accumulate image      (two files stitched by port uid)
  discomfort run start.json -n 20          (start.json's next port names the file each iteration runs)
  discomfort run upscale.json --folder photos/ --workers 4 --ray head-node:6379
  discomfort ports refine.json
  discomfort stitch load.json blur.json -o pipeline.json
  discomfort convert workflow.json -o workflow_api.json

ComfyUI is taken from --comfyui or $COMFYUI_PATH. Exit codes: 0 done, 1 a node failed, 2 bad workflow or
arguments, 3 no ComfyUI found, 130 interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discomfort",
        description="Run ComfyUI workflows as loops, headless, on a ComfyUI embedded in this process.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show ComfyUI's own log")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run workflow files (stitched in order) N times",
                              description="Run one or more workflow files (UI or API format; several are stitched "
                              "by DiscomfortPort uid) N times. What an OUTPUT port gives feeds the entry port with "
                              "the same uid in the next iteration.")  # fmt: skip
    run.add_argument("workflows", nargs="+", type=Path, metavar="WORKFLOW", help="workflow JSON files")
    run.add_argument("-n", "--iterations", type=int, default=1, help="how many times (default 1)")
    run.add_argument("-i", "--input", action="append", default=[], metavar="UID=VALUE",
                     help="a value for an entry port: an image file, a .json envelope, a number, true/false, "
                     "or text")  # fmt: skip
    run.add_argument("--until", metavar="UID", help="stop after the iteration in which this OUTPUT uid is true")
    run.add_argument("--accumulate", action="append", default=[], metavar="UID",
                     help="collect every iteration's value of this uid (images are saved as a batch)")  # fmt: skip
    run.add_argument("--storage", choices=("ram", "disk", "auto"), default="ram", help="where accumulated values wait")
    run.add_argument("--memory-budget", type=int, default=DEFAULT_BUDGET_MIB, metavar="MIB",
                     help="with --storage auto: MiB the accumulated values hold in memory, all uids together, before "
                     f"later ones wait on disk (default {DEFAULT_BUDGET_MIB})")  # fmt: skip
    run.add_argument("--keep", type=Path, metavar="DIR",
                     help="after a successful run, store the accumulated values in DIR (relative to --output), "
                     "replacing an earlier run's")  # fmt: skip
    run.add_argument("--checkpoint", type=Path, metavar="DIR", help="commit the loop's state here every iteration")
    run.add_argument("--resume", action="store_true", help="continue from --checkpoint's last finished iteration")
    run.add_argument("--workflows-folder", type=Path, metavar="DIR",
                     help="where the file names a next port gives are found (default: the first workflow's folder); "
                     "a name leading out of it is refused")  # fmt: skip
    run.add_argument("--folder", type=Path, metavar="DIR",
                     help="run once per image of DIR instead of -n times: each file enters through the uids image, "
                     "mask, filename and index, as in the folder loop")  # fmt: skip
    run.add_argument("--workers", type=int, default=0, metavar="N",
                     help="fan the iterations out over N Ray workers, each an embedded ComfyUI (pip install "
                     "'discomfort[ray]'); only for iterations that carry no value to the next")  # fmt: skip
    run.add_argument("--ray", metavar="ADDRESS", help="the Ray cluster the workers run on (default: $RAY_ADDRESS, "
                     "else a local Ray, started and stopped)")  # fmt: skip
    run.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                     help="with --folder or --workers: stop at a failing item, or skip it and go on")  # fmt: skip
    run.add_argument("-o", "--output", type=Path, default=Path("output"), help="folder for images (default: ./output)")
    run.add_argument("--input-dir", type=Path, help="ComfyUI's input folder, where image loaders look")
    run.add_argument("--comfyui", type=Path, help="the ComfyUI folder to boot (default: $COMFYUI_PATH)")
    _node_options(run)

    ports = commands.add_parser("ports", help="list a workflow's ports and what it takes and gives")
    ports.add_argument("workflow", type=Path)

    stitch = commands.add_parser("stitch", help="stitch workflow files into one by port uid")
    stitch.add_argument("workflows", nargs="+", type=Path, metavar="WORKFLOW")
    stitch.add_argument("-o", "--output", type=Path, required=True, help="the stitched file to write")

    convert = commands.add_parser("convert", help="convert a UI workflow to the API format")
    convert.add_argument("workflow", type=Path)
    convert.add_argument("-o", "--output", type=Path, required=True, help="the API-format file to write")
    convert.add_argument("--comfyui", type=Path, help="the ComfyUI whose node definitions to use")
    _node_options(convert)
    return parser


def _node_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--custom-nodes", action="append", default=[], type=Path, metavar="DIR",
                         help="a custom_nodes folder to load besides ComfyUI's own (repeatable)")  # fmt: skip
    command.add_argument("--api-nodes", action="store_true", help="load ComfyUI's API (partner) nodes too")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # ComfyUI logs every optional node pack it could not import; that is noise unless asked for.
    level = logging.INFO if args.verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__package__).setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return {"run": _run, "ports": _ports, "stitch": _stitch, "convert": _convert}[args.command](args)
    except ComfyNotFoundError as error:
        return _fail(error, EXIT_NO_COMFY)
    except WorkflowError as error:
        return _fail(error, EXIT_BAD_INPUT)
    except (ExecutionError, LoopError) as error:
        return _fail(error, EXIT_FAILED)
    except (SettingsError, SerializationError, CheckpointError) as error:
        return _fail(error, EXIT_BAD_INPUT)
    except DiscomfortError as error:
        return _fail(error, EXIT_FAILED)
    except KeyboardInterrupt:
        print("discomfort: interrupted; finished iterations are kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def _fail(error: BaseException, code: int) -> int:
    print(f"discomfort: {error}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .api import Runtime
    from .executor.steps import describe_path

    inputs = dict(_parse_input(text) for text in args.input)
    if args.workers < 0:
        raise SettingsError(f"--workers must be 0 or more, got {args.workers}")
    if args.ray and not args.workers:
        raise SettingsError("--ray names the cluster for --workers; say how many workers")
    if args.until and (args.workers or args.folder is not None):
        raise SettingsError("--until needs the iterations in order; it does not go with --folder or --workers")
    if args.keep is not None and (args.workers or args.folder is not None):
        raise SettingsError("--keep stores a loop's accumulated values; it does not go with --folder or --workers")
    if args.folder is not None and not args.folder.is_dir():
        raise WorkflowError(f"--folder {args.folder}: no such folder")
    output = args.output.resolve()
    started = time.perf_counter()
    with Runtime(args.comfyui, output_directory=output, input_directory=args.input_dir,
                 extra_custom_nodes=args.custom_nodes, api_nodes=args.api_nodes) as runtime:  # fmt: skip
        booted = time.perf_counter()
        one = args.folder is None and args.iterations < 2
        bar = tqdm(total=args.iterations, unit="it", desc="items" if args.folder or args.workers else "iterations",
                   file=sys.stderr, disable=one)  # fmt: skip
        loop_bars: dict[str, Any] = {}
        saved: list[Path] = []

        def progress(done: int, total: int, values: dict[str, Any]) -> None:
            saved.extend(_save_images(values, output, done))  # each iteration's images as soon as it finishes
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        def loop_progress(report: dict[str, Any]) -> None:
            # A bar for each loop inside the workflows, below the pipeline's own.
            loop_bar = loop_bars.get(report["node"])
            if loop_bar is None:
                loop_bar = loop_bars[report["node"]] = tqdm(total=report["total"], unit="it", file=sys.stderr,
                                                            desc=f"loop {report['node']}", position=len(loop_bars) + 1,
                                                            leave=True)  # fmt: skip
            loop_bar.update(report["iteration"] - loop_bar.n)
            if report["state"] != "running":
                loop_bar.set_postfix_str(report["state"])

        try:
            if args.folder is None and not args.workers:
                result = runtime.run(args.workflows, inputs, iterations=args.iterations, until=args.until,
                                     accumulate=args.accumulate, storage=args.storage,
                                     memory_budget_mb=args.memory_budget, keep=args.keep,
                                     checkpoint=args.checkpoint, resume=args.resume,
                                     workflows_folder=args.workflows_folder, progress=progress,
                                     loop_progress=loop_progress)  # fmt: skip
            else:  # independent items, in this process or over Ray's workers; one bar for them all
                items = str(args.folder) if args.folder is not None else [{}] * args.iterations
                result = runtime.map(args.workflows, items, inputs, workers=args.workers, address=args.ray,
                                     accumulate=args.accumulate, storage=args.storage,
                                     memory_budget_mb=args.memory_budget, on_error=args.on_error,
                                     checkpoint=args.checkpoint, resume=args.resume, progress=progress)  # fmt: skip
        finally:
            for open_bar in (bar, *loop_bars.values()):
                open_bar.close()
    written = [image for image in result.images if image.get("type", "output") == "output"]  # not the previews
    for image in written:
        print(output / image.get("subfolder", "") / image["filename"])
    for path in saved:
        print(path)
    seconds = time.perf_counter() - booted
    per_iteration = f"{1e3 * sum(result.seconds) / len(result.seconds):.1f} ms/iteration" if result.seconds else "-"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    for item, why in result.skipped:
        print(f"discomfort: skipped {item}: {why}", file=sys.stderr)
    runs = "ran once" if args.iterations == 1 and args.folder is None else f"{result.iterations} iteration(s)"
    print(f"done: {runs}{' (stopped early)' if result.stopped_early else ''}, {per_iteration}, {seconds:.2f} s "
          f"(ComfyUI boot {booted - started:.1f} s), peak memory {peak:.0f} MB, {len(written) + len(saved)} image(s) "
          f"in {output}", file=sys.stderr)  # fmt: skip
    if result.path:  # the files each iteration ran: a conditional pipeline's way through them
        print(f"path: {describe_path(result.path)}", file=sys.stderr)
    if args.keep is not None:
        print(f"kept: {', '.join(args.accumulate) or 'nothing accumulated'} in {output / args.keep}", file=sys.stderr)
    for node_id, report in result.loops.items():
        timing = report.get("seconds_per_iteration")
        print(f"loop {node_id}: {report['iteration']} of {report['total']} iteration(s), {report['state']}"
              + (f", {1e3 * timing:.1f} ms/iteration" if timing else ""), file=sys.stderr)  # fmt: skip
    return EXIT_OK


def _ports(args: argparse.Namespace) -> int:
    from .ports import PortGraph
    from .workflow.files import load_json

    model = PortGraph(load_json(args.workflow))
    found = model.interface()  # raises, naming every port at fault
    print(f"{'node':>8}  {'uid':20} {'mode':12} {'role':15} {'body':10} {'type':12} tags")
    for port in model.ports():
        role = port.role.value if port.role is not None else "-"
        body = f"loop {port.loop_id}" if port.loop_id is not None else "workflow" if port.role is not None else "-"
        print(f"{port.node_id:>8}  {port.uid:20} {port.mode.value:12} {role:15} {body:10} {port.type:12} "
              f"{', '.join(port.tags)}")  # fmt: skip
    print(f"takes: {', '.join(found.takes) or '-'}\ngives: {', '.join(found.gives) or '-'}")
    return EXIT_OK


def _stitch(args: argparse.Namespace) -> int:
    from .ports.stitch import stitch_api, stitch_ui
    from .workflow.files import load_json
    from .workflow.graph import detect_format

    graphs = [load_json(path) for path in args.workflows]
    kinds = {detect_format(graph) for graph in graphs}
    if len(kinds) > 1:
        raise WorkflowError("stitch files of one format: all UI workflows or all API prompts")
    stitch = stitch_ui if kinds == {"ui"} else stitch_api
    _write_json(args.output, stitch(graphs, [path.name for path in args.workflows]))
    print(args.output)
    return EXIT_OK


def _convert(args: argparse.Namespace) -> int:
    from .api import Runtime

    with Runtime(args.comfyui, extra_custom_nodes=args.custom_nodes, api_nodes=args.api_nodes) as runtime:
        _write_json(args.output, runtime.load(args.workflow))
    print(args.output)
    return EXIT_OK


def _parse_input(text: str) -> tuple[str, Any]:
    uid, separator, raw = text.partition("=")
    if not separator or not uid.strip():
        raise WorkflowError(f"--input {text!r}: write it as UID=VALUE")
    path = Path(raw).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.is_file():
            raise WorkflowError(f"--input {uid}: no image file {path}")
        from .nodes.folder import load_image

        return uid.strip(), load_image(path)[0]
    if path.suffix.lower() == ".json" and path.is_file():
        from .serialization import decode

        data = json.loads(path.read_text())
        is_envelope = isinstance(data, dict) and {"type", "content", "meta"} <= set(data)
        return uid.strip(), decode(data) if is_envelope else data
    if raw.lower() in ("true", "false"):
        return uid.strip(), raw.lower() == "true"
    for kind in (int, float):
        try:
            return uid.strip(), kind(raw)
        except ValueError:
            pass
    return uid.strip(), raw


def _save_images(values: dict[str, Any], folder: Path, iteration: int) -> list[Path]:
    """IMAGE values given by ports, as PNG files `<uid>_<iteration>[_<n>].png`."""
    from .nodes.save import write_png

    written = []
    for uid, value in values.items():
        if not (hasattr(value, "ndim") and value.ndim == 4 and value.shape[-1] in (1, 3, 4)):
            continue
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in uid)
        for index, frame in enumerate(value):
            suffix = f"_{index}" if len(value) > 1 else ""
            path = folder / f"{safe}_{iteration:05d}{suffix}.png"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(frame, path)
            written.append(path)
    return written


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
