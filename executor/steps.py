"""Where each iteration's plan comes from: one plan for every iteration, or the workflow files a `next` port names.

A pipeline of workflow files whose first step gives the reserved uid `next` is *conditional*, a state machine of
files: what `next` gives in an iteration (text, one file name per line; several files are stitched into one step)
names the files the next iteration runs. Empty, or `done`, ends the loop; so does a step that gives no `next` (a
final state). Each set of files is planned once per run, so switching back to a file does not plan it again, and
the value of every uid carries across a switch by uid: an entry takes the latest value any earlier iteration gave
its uid, else the loop's initial value, else what feeds it.

Pure: a front says how names become a plan (`plan_of`: which folder they resolve in, how files are read); the
engine (`executor.engine`) asks for each iteration's step and reports what `next` gave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SettingsError, shown
from .plan import ITERATION_UID, LoopPlan

NEXT_UID = "next"  # the exit whose value names the next iteration's workflow files
DONE = "done"  # what `next` gives to end the loop (as does nothing at all)

PlanOf = Callable[[tuple[str, ...]], LoopPlan]  # workflow names -> their plan (stitched when several)


@dataclass(frozen=True)
class Step:
    """What one iteration runs: the workflow files named (empty for a plan that is not one of files) and their
    plan."""

    names: tuple[str, ...]
    plan: LoopPlan

    @property
    def label(self) -> str:
        """How messages, results and the CLI name the step: its files joined by " + ", as plans of files are."""
        return " + ".join(self.names) or self.plan.loop_id


class Steps:
    """Every iteration runs one plan; the uids it carries are the plan's own (exit downstream of the entry)."""

    conditional = False

    def __init__(self, plan: LoopPlan, names: Sequence[str] = ()):
        self.first = Step(tuple(names), plan)

    def step(self, names: tuple[str, ...]) -> Step:
        """The step that runs `names` (as a previous step's `following` gave them)."""
        return self.first

    def following(self, step: Step, given: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The names of the step after `step`, which gave `given`; None when the loop ends after it."""
        return step.names

    def carries(self, step: Step) -> tuple[str, ...]:
        """The uids whose entries in `step` take the latest value given to their uid (once there is one)."""
        return step.plan.carried

    def planned(self) -> list[Step]:
        """Every step planned so far, the first one first."""
        return [self.first]


class WorkflowStates(Steps):
    """A conditional pipeline: each iteration runs the files the previous one's `next` named.

    Args:
        names, plan: the first step's files and their plan.
        plan_of: plans other files when `next` first names them (resolving the names, refusing those that leave
            the folder they are read from); each set of names is planned once.
    """

    conditional = True

    def __init__(self, names: Sequence[str], plan: LoopPlan, plan_of: PlanOf):
        super().__init__(plan, names)
        self._plan_of = plan_of
        self._steps: dict[tuple[str, ...], Step] = {self.first.names: self.first}

    def step(self, names: tuple[str, ...]) -> Step:
        found = self._steps.get(names)
        if found is None:
            found = self._steps[names] = Step(names, self._plan_of(names))
        return found

    def following(self, step: Step, given: Mapping[str, Any]) -> tuple[str, ...] | None:
        if NEXT_UID not in step.plan.exits:
            return None  # a final state
        return parse_next(given.get(NEXT_UID))

    def carries(self, step: Step) -> tuple[str, ...]:
        return tuple(uid for uid in step.plan.entries if uid != ITERATION_UID)

    def planned(self) -> list[Step]:
        return list(self._steps.values())


def pipeline_steps(names: Sequence[str], plan: LoopPlan, plan_of: PlanOf) -> Steps:
    """The steps of a pipeline of workflow files: conditional when its first step gives `next`, else its plan in
    every iteration."""
    return WorkflowStates(names, plan, plan_of) if NEXT_UID in plan.exits else Steps(plan, names)


def parse_next(value: Any) -> tuple[str, ...] | None:
    """The workflow names a `next` value gives (one per line, blank lines ignored); None for nothing or `done`.
    Anything but text is refused: a number or a list is a mistake in the graph, not a file name."""
    if not isinstance(value, str):
        raise SettingsError(f"next gave a {type(value).__name__} ({shown(value)}); it names the next workflow "
                            f"file(s), one per line, or is empty or {DONE!r} to stop")  # fmt: skip
    names = tuple(line.strip() for line in value.splitlines() if line.strip())
    if not names or (len(names) == 1 and names[0].lower() == DONE):
        return None
    return names


def describe_path(path: Sequence[Sequence[str] | str]) -> str:
    """A path (each step's files, or its label) as one line, repeats folded: 'start.json, refine.json (x3),
    upscale.json'."""
    parts: list[list[Any]] = []
    for step in path:
        label = step if isinstance(step, str) else " + ".join(step)
        if parts and parts[-1][0] == label:
            parts[-1][1] += 1
        else:
            parts.append([label, 1])
    return ", ".join(label if count == 1 else f"{label} (x{count})" for label, count in parts)
