"""Every error Discomfort raises on purpose. Each names the thing at fault: a file, a node, a port uid, an iteration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHOWN_CHARACTERS = 60  # how much of a value a message quotes


def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """`value` as a message quotes it: its repr (so NULs, odd characters and types show), cut to `limit`."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(str(value))} characters)"


class DiscomfortError(Exception):
    """Base class: catch this to catch every error Discomfort raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a graph, and the nodes at fault (where ComfyUI's frontend outlines it)."""

    message: str
    nodes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message

    def within(self, where: str) -> Problem:
        """The same problem, said of `where` (a loop, a file)."""
        return Problem(f"{where}: {self.message}", self.nodes)


class WorkflowError(DiscomfortError, ValueError):
    """A workflow (UI or API format) is malformed or cannot be used as asked. `faults` maps the node ids at fault,
    when known, to what is wrong with each."""

    def __init__(self, message: str, *, faults: dict[str, list[str]] | None = None):
        self.faults = faults or {}
        super().__init__(message)


class PortError(WorkflowError):
    """One or more DiscomfortPort nodes are set up wrongly; `problems` lists every one found, not just the first."""

    def __init__(self, problems: list[str | Problem]):
        self.problems = [str(problem) for problem in problems]
        faults: dict[str, list[str]] = {}
        for problem in problems:
            for node_id in getattr(problem, "nodes", ()):
                faults.setdefault(node_id, []).append(str(problem))
        super().__init__("; ".join(self.problems), faults=faults)


class ComfyNotFoundError(DiscomfortError):
    """No ComfyUI could be found or booted for an embedded run."""


class PromptValidationError(WorkflowError):
    """ComfyUI refused a prompt at validation; `node_errors` is ComfyUI's own per-node report."""

    def __init__(self, message: str, node_errors: dict | None = None):
        self.node_errors = node_errors or {}
        super().__init__(message, faults={node_id: [str(error.get("details") or error.get("message"))
                                                    for error in report.get("errors", [])]
                                          for node_id, report in self.node_errors.items()})  # fmt: skip


class ExecutionError(DiscomfortError):
    """A node failed while a prompt ran. Names the node id and class, and keeps ComfyUI's message and traceback."""

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        class_type: str | None = None,
        exception_type: str | None = None,
        traceback: list[str] | None = None,
        inputs: dict | None = None,
    ):
        self.node_id = node_id
        self.class_type = class_type
        self.exception_type = exception_type
        self.traceback = traceback or []
        self.inputs = inputs  # the failing node's inputs, as ComfyUI formats them for its error report
        super().__init__(message)


class BodyError(ExecutionError):
    """A node of a loop body failed in one inner run; `original` is the exception the node raised."""

    def __init__(self, message: str, *, original: BaseException | None = None, **details):
        self.original = original
        super().__init__(message, **details)


class LoopError(DiscomfortError):
    """A loop stopped on an error. Names the loop, the iteration and the body node; `record` keeps what the
    iterations that finished produced."""

    def __init__(self, message: str, *, loop_id: str, iteration: int | None = None, node_id: str | None = None,
                 class_type: str | None = None, record: object = None, traceback: list[str] | None = None,
                 inputs: dict | None = None):  # fmt: skip
        self.loop_id = loop_id
        self.iteration = iteration
        self.node_id = node_id  # the body node that failed (the deepest one, through nested loops)
        self.class_type = class_type
        self.record = record
        self.traceback = traceback or []
        self.inputs = inputs
        super().__init__(message)

    def kept_in(self, where: object) -> LoopError:
        """This error, also saying where the values of the finished iterations were kept."""
        return LoopError(f"{self}; the values of its finished iterations are kept in {where}", loop_id=self.loop_id,
                         iteration=self.iteration, node_id=self.node_id, class_type=self.class_type,
                         record=self.record, traceback=self.traceback, inputs=self.inputs)  # fmt: skip


class SerializationError(DiscomfortError, ValueError):
    """A value cannot be encoded, or an envelope cannot be decoded; names the key path at fault."""


class UntrustedPickleError(SerializationError):
    """A pickled payload is unsigned, signed by another installation, or altered; it was not loaded."""


class SettingsError(DiscomfortError, ValueError):
    """A loop setting (iterations, a uid, storage, a checkpoint name) is out of range or names nothing."""
