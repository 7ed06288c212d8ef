"""Reading workflow files, with errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import WorkflowError
from .graph import detect_format

MAX_WORKFLOW_BYTES = 64 * 1024 * 1024  # far above any real workflow; stops a stray video file from being parsed


def load_json(path: str | os.PathLike) -> Any:
    """Parse a workflow file, naming the file and the position of any syntax error."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise WorkflowError(f"{path}: no such file") from None
    if size > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: {size} bytes is too large for a workflow file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WorkflowError(f"{path}: not a text file") from None
    except json.JSONDecodeError as error:
        raise WorkflowError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None


def load_prompt(path: str | os.PathLike) -> dict[str, Any]:
    """Load an API-format prompt. A UI-format workflow is refused with the way to get the API format."""
    graph = load_json(path)
    try:
        kind = detect_format(graph)
    except WorkflowError as error:
        raise WorkflowError(f"{path}: {error}") from None
    if kind != "api":
        raise WorkflowError(
            f"{path} is a UI-format workflow; this command takes the API format (in ComfyUI: Workflow > Export (API))"
        )
    return graph


def resolve_under(root: str | os.PathLike, name: str, what: str = "workflow file") -> Path:
    """`name` (a `what`, for messages) as a path inside `root`; a name that would leave `root` (absolute, `..`, a
    link out) is refused. Workflows come from anywhere: every path they name goes through here."""
    base = Path(root).resolve()
    if not name or Path(name).is_absolute():
        raise WorkflowError(f"{name!r}: give a {what} name relative to {base}")
    path = (base / name).resolve()
    if not path.is_relative_to(base) or path == base:
        raise WorkflowError(f"{name!r} is outside {base}; a {what} must be inside it")
    return path
