"""Reading workflow files, with errors that name the file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import WorkflowError, shown
from .graph import detect_format

MAX_WORKFLOW_BYTES = 64 * 1024 * 1024  # far above any real workflow; stops a stray video file from being parsed
MAX_PART_BYTES = 255  # a file or folder name, on every common file system
MAX_NAME_CHARACTERS = 1024  # a whole relative path a widget names


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


def checked_name(name: Any, widget: str) -> str:
    """A file or folder name a widget gives, as text any file system takes: refused (naming `widget` and the
    value) if it is not text, holds a NUL or a lone surrogate, or is too long; Windows' separators become '/', so
    a name written on Windows means the same everywhere."""
    if not isinstance(name, str):
        raise WorkflowError(f"{widget} {shown(name)} is a {type(name).__name__}, not text")
    if "\x00" in name:
        raise WorkflowError(f"{widget} {shown(name)} holds a NUL character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise WorkflowError(f"{widget} {shown(name)} is not valid text (it holds a lone surrogate)") from None
    name = name.replace("\\", "/")
    longest = max(len(part.encode("utf-8")) for part in name.split("/"))
    if len(name) > MAX_NAME_CHARACTERS or longest > MAX_PART_BYTES:
        raise WorkflowError(f"{widget} {shown(name)} is too long: at most {MAX_PART_BYTES} bytes between slashes "
                            f"and {MAX_NAME_CHARACTERS} characters in all")  # fmt: skip
    return name


def resolve_under(root: str | os.PathLike, name: str, what: str = "workflow file", widget: str | None = None) -> Path:
    """`name` (a `what` given by `widget`, for messages) as a path inside `root`; a name that would leave `root`
    (absolute, a drive, `..`, a link out) is refused. Workflows come from anywhere: every path they name goes
    through here."""
    base = Path(root).resolve()
    name = checked_name(name, widget or what)
    if not name or Path(name).is_absolute() or re.match(r"[A-Za-z]:", name):
        raise WorkflowError(f"{name!r}: give a {what} name relative to {base}")
    path = (base / name).resolve()
    if not path.is_relative_to(base) or path == base:
        raise WorkflowError(f"{name!r} is outside {base}; a {what} must be inside it")
    return path
