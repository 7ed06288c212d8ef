"""The loop engine: runs a compiled body N times, or until a stop value, carrying values between iterations.

Every front (the loop node, the Python API, the CLI) ends here. Values move by reference: the engine hands
carried values to the carry-in nodes and collects what the carry-out nodes give, never copying them; what it
accumulates is kept as a list and joined once, at the end, so no iteration costs more than the first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import BodyError, DiscomfortError, LoopError, PromptValidationError, SettingsError, shown
from ..serialization.checkpoint import Checkpoint, CheckpointMismatch, CheckpointState
from ..serialization.codec import digest, is_ndarray, is_tensor
from ..serialization.stores import DEFAULT_BUDGET_BYTES, STORAGE_MODES, DiskList, DiskStore, make_lists
from ..workflow.graph import Graph
from . import compat
from .carry import runs
from .nested import NestedRunner
from .plan import CARRY_OUT, ITERATION_UID, LoopPlan
from .steps import Steps, describe_path

log = logging.getLogger(__name__)

MAX_ITERATIONS = 100_000  # a hard cap, whatever a widget or an API call asks for

Progress = Callable[[int, int], None]  # (finished iterations, planned iterations)


@dataclass(frozen=True)
class LoopSettings:
    iterations: int
    stop_when: str | None = None  # uid of an OUTPUT port; the loop ends after the iteration where it is true
    accumulate: tuple[str, ...] = ()
    storage: str = "ram"  # where accumulated values wait: ram, disk, or auto (memory, spilling past a budget)
    checkpoint: str | os.PathLike | None = None  # a folder to commit the loop's state to after every iteration
    resume: bool = False  # continue from the checkpoint's last finished iteration instead of starting over
    on_error: str = "stop"  # "skip": an iteration whose body fails is recorded in LoopRecord.skipped, the loop goes on
    memory_budget: int = DEFAULT_BUDGET_BYTES  # storage auto: bytes the accumulated values hold in memory, in all
    keep: str | os.PathLike | None = None  # a folder to store the accumulated values in after a successful run

    def check(self, plan: LoopPlan, *, uids: bool = True) -> None:
        """Refuse settings out of range, and (with `uids`) uids to stop on or accumulate that `plan` does not
        give."""
        where = f"loop {plan.loop_id}"
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int):
            raise SettingsError(f"{where}: iterations must be a whole number, got {self.iterations!r}")
        if not 0 <= self.iterations <= MAX_ITERATIONS:
            raise SettingsError(f"{where}: iterations must be between 0 and {MAX_ITERATIONS}, got {self.iterations}")
        if self.on_error not in ("stop", "skip"):
            raise SettingsError(f"{where}: on_error must be stop or skip, got {self.on_error!r}")
        if self.storage not in STORAGE_MODES:
            raise SettingsError(f"{where}: storage must be one of {', '.join(STORAGE_MODES)}, got {self.storage!r}")
        if isinstance(self.memory_budget, bool) or not isinstance(self.memory_budget, int) or self.memory_budget < 0:
            raise SettingsError(f"{where}: the memory budget is a number of bytes, 0 or more, got "
                                f"{shown(self.memory_budget)}")  # fmt: skip
        for uid in (self.stop_when, *self.accumulate) if uids else ():
            if uid and uid not in plan.exits:
                known = ", ".join(sorted(plan.exits)) or "none"
                raise SettingsError(
                    f"{where}: no OUTPUT port in body {plan.body_name!r} has uid {uid!r} (OUTPUT uids: {known})"
                )


@dataclass
class LoopRecord:
    """What a loop run has produced so far; filled as iterations finish, so it survives an error or an interrupt."""

    iterations: int = 0  # finished iterations
    values: dict[str, Any] = field(default_factory=dict)  # the latest value of every uid
    accumulated: dict[str, Sequence[Any]] = field(default_factory=dict)  # uid -> one value per finished iteration
    seconds: list[float] = field(default_factory=list)  # wall time of each finished iteration
    stopped_early: bool = False
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (iteration, why) with on_error="skip"
    # A pipeline of files' path: the workflow files each finished iteration ran (executor.steps)
    path: list[tuple[str, ...]] = field(default_factory=list)
    # What body nodes showed over the iterations (saved images...), by the node shown: node id -> {"images": [...]}
    shown: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def add_shown(self, outputs: Mapping[str, Mapping[str, Any]]) -> None:
        for node_id, node_output in outputs.items():
            merged = self.shown.setdefault(node_id, {})
            for key, items in node_output.items():
                if isinstance(items, (list, tuple)):  # PreviewAny's text comes as a tuple
                    merged.setdefault(key, []).extend(items)

    @property
    def ui(self) -> dict[str, list[Any]]:
        """Everything the body showed, merged over its nodes: {"images": [...], ...}."""
        merged: dict[str, list[Any]] = {}
        for node_output in self.shown.values():
            for key, items in node_output.items():
                merged.setdefault(key, []).extend(items)
        return merged

    store: DiskStore | None = None  # holds accumulated values for storage disk/auto; see close()
    checkpoint: Checkpoint | None = None  # held (locked) until close(): the accumulated values may live there
    _joined: dict[str, tuple[int, Any]] = field(default_factory=dict, repr=False)  # uid -> (items, joined)

    def joined(self, uid: str) -> Any:
        """The accumulated values of `uid` as one value: tensors and latents joined along the batch, else a list.
        Joined once for the items there are (what is kept and what a front returns are the same value)."""
        items = self.accumulated.get(uid, [])
        known = self._joined.get(uid)
        if known is not None and known[0] == len(items):
            return known[1]
        # From disk, tensors are joined into one allocation as they are read.
        value = join_batch(items.as_batch() if isinstance(items, DiskList) else list(items))
        self._joined[uid] = (len(items), value)
        return value

    def close(self, *, success: bool = True) -> os.PathLike | None:
        """Let the checkpoint go, and remove a temporary disk store once its values were read; after a failure
        the store is kept, so nothing is lost: returns where, then."""
        if self.checkpoint is not None:
            self.checkpoint.close()
        if self.store is None:
            return None
        kept = self.store.close(success=success)
        if kept is not None:
            log.warning("values of the unfinished loop are kept in %s", kept)
        return kept

    def failed(self, error: BaseException) -> BaseException:
        """Close after `error` stopped the run; the error to report: a LoopError then also names where the values
        of its finished iterations are kept."""
        kept = self.close(success=False)
        return error.kept_in(kept) if kept is not None and isinstance(error, LoopError) else error

    def fail(self, error: BaseException) -> NoReturn:
        """Close after `error` stopped the run, and raise what `failed` says."""
        reported = self.failed(error)
        if reported is error:
            raise error
        raise reported from error


def join_batch(items: Any) -> Any:
    """IMAGE/MASK tensors concatenate along dim 0, LATENT dicts along their samples; anything else stays a list."""
    if is_tensor(items):
        return items  # joined already
    if not items:
        return None
    first = items[0]
    if is_tensor(first) and all(is_tensor(x) and x.shape[1:] == first.shape[1:] for x in items):
        import torch

        return torch.cat(list(items), dim=0)
    if isinstance(first, dict) and all(isinstance(x, dict) and is_tensor(x.get("samples")) for x in items):
        import torch

        joined = dict(first)
        joined["samples"] = torch.cat([x["samples"] for x in items], dim=0)
        if all(is_tensor(x.get("noise_mask")) for x in items):
            joined["noise_mask"] = torch.cat([x["noise_mask"] for x in items], dim=0)
        else:
            joined.pop("noise_mask", None)
        joined.pop("batch_index", None)  # per-item indices of the parts no longer describe the whole
        return joined
    return list(items)


def run_loop(
    plan: LoopPlan | Steps,
    settings: LoopSettings,
    runner: NestedRunner,
    *,
    initial: Mapping[str, Any] | None = None,
    prompt_id: str = "discomfort",
    extra_data: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    record: LoopRecord | None = None,
    per_iteration: Mapping[str, Callable[[int], Any]] | None = None,
) -> LoopRecord:
    """Run `plan` on `runner` and return what it produced.

    Args:
        plan: the plan every iteration runs, or the steps of a conditional pipeline (`executor.steps`), whose
            every workflow runs on a lane of `runner` of its own (`NestedRunner.lane`).
        initial: iteration-0 values by uid; a uid not given here takes what feeds its PASSTHRU entry port.
        prompt_id: the outer prompt's id, used to name the inner runs.
        extra_data: handed to every inner run (extra_pnginfo, API keys, client id).
        progress: called after every iteration with (finished, planned).
        record: filled in place as iterations finish; pass one to keep partial results after an exception.
        per_iteration: uid -> a function of the iteration index giving that uid's value in each iteration
            (a folder's next image, say): made only when its iteration starts, so one is held at a time.
    """
    steps = plan if isinstance(plan, Steps) else Steps(plan)
    # A conditional pipeline's later files may take and give uids its first one does not: they are known as the
    # path reaches them.
    settings.check(steps.first.plan, uids=not steps.conditional)
    loop = LoopRun(steps, settings, runner, initial=initial, prompt_id=prompt_id, extra_data=extra_data,
                   progress=progress, record=record, per_iteration=per_iteration)  # fmt: skip
    return loop.run()


class LoopRun:
    """One run of a loop: what it was asked, its carry mailbox, where it commits, and what it produced so far.

    `plan` is the plan of the step running (the first step's before the run starts); a conditional pipeline
    changes it as `next` names other files, `lane` with it.
    """

    def __init__(self, steps: Steps, settings: LoopSettings, runner: NestedRunner, *,
                 initial: Mapping[str, Any] | None = None, prompt_id: str = "discomfort",
                 extra_data: Mapping[str, Any] | None = None, progress: Progress | None = None,
                 record: LoopRecord | None = None,
                 per_iteration: Mapping[str, Callable[[int], Any]] | None = None):  # fmt: skip
        self.steps, self.settings, self.runner = steps, settings, runner
        self.step = steps.first
        self.plan = self.step.plan
        self.lane = runner
        self.initial = dict(initial or {})
        self.per_iteration = dict(per_iteration or {})
        if not steps.conditional:
            self.per_iteration = {uid: make for uid, make in self.per_iteration.items() if uid in self.plan.entries}
            _check_initial_values(self.plan, {**self.initial, **self.per_iteration})
        self.outer_prompt_id = prompt_id
        self.prompt_id = f"{prompt_id}:{self.plan.loop_id}"
        self.extra_data = dict(extra_data or {})
        self.progress = progress
        self.record = record if record is not None else LoopRecord()
        self.checkpoint: Checkpoint | None = None
        self._carries: frozenset[str] = frozenset(steps.carries(self.step))
        self._enclosing = self.plan.enclosing_tokens()  # the loops around this one: their tokens change on their own
        self._given_at: dict[str, int] = {}  # uid -> the iteration that last gave it (its carry-in token's version)
        self._versions: dict[str, int] = {}  # uid -> the version of the value its entries take this iteration
        self._start = self.step.names  # the step the first iteration of this run runs
        self._fingerprints: dict[str, str] = {}  # the structure of every step of the path, by its files
        self._expected: dict[str, str] = {}  # ... as a checkpoint being resumed recorded them

    def run(self) -> LoopRecord:
        if self.settings.keep is not None:
            from ..serialization.kept import check_writable

            check_writable(self.settings.keep)
        self.carry = runs.open(self.plan.loop_id)
        try:
            if self.settings.iterations == 0:
                self._initial_values()
            else:
                self.checkpoint, state = _open_checkpoint(self.plan, self.settings, self.initial, self.record,
                                                          self.outer_prompt_id)  # fmt: skip
                if state is not None:
                    self._resume(state)
                self._iterate()
            if self.steps.conditional:
                self._unseen_uids()
            if self.settings.keep is not None:
                self._keep()
            return self.record
        finally:
            runs.close(self.carry)

    def _resume(self, state: CheckpointState) -> None:
        """Continue where a checkpoint left off: its values were given by the iteration before its last."""
        self._given_at = {uid: state.iteration - 1 for uid in state.values}
        self.record.path = list(state.path)
        if self.steps.conditional:
            self._expected = dict(state.plans)
            if state.next is not None:
                self._start = state.next

    def _iterate(self) -> None:
        record, total = self.record, self.settings.iterations
        if record.iterations >= total or record.stopped_early:
            return  # resumed from a checkpoint of a finished run
        names: tuple[str, ...] | None = self._start
        template, outputs = self._enter(names, record.iterations)
        unfed: dict[tuple[str, frozenset[str]], dict[str, Any]] = {}  # templates by the uids fed by their feeder
        for i in range(record.iterations, total):
            compat.raise_if_interrupted()
            started = time.perf_counter()
            if names != self.step.names:
                template, outputs = self._enter(names, i)
            plan = self.plan
            try:
                self._offer(i)
            except Exception as error:  # a value that could not be made: a file that does not load, say
                if self._skipped(i, f"{type(error).__name__}: {error}"):
                    continue
                raise LoopError(f"{self._where(i)}: {error}", loop_id=plan.loop_id, iteration=i + 1,
                                record=record) from error  # fmt: skip
            feeding = self.carry.feeding()
            if (plan.fingerprint, feeding) not in unfed:
                unfed[plan.fingerprint, feeding] = plan.without_feeders(template, feeding)
            prompt = plan.instantiate(unfed[plan.fingerprint, feeding], self._tokens(i))
            try:
                self.lane.run(prompt, f"{self.prompt_id}:{i}", outputs, self.extra_data)
            except BodyError as error:
                if self._skipped(i, str(error)):
                    continue
                raise LoopError(f"{self._where(i)}: {error}", loop_id=plan.loop_id, iteration=i + 1,
                                node_id=error.node_id, class_type=error.class_type, record=record,
                                traceback=error.traceback, inputs=error.inputs) from error  # fmt: skip
            names = self._collect(i, started)
            if names is None:
                break

    def _enter(self, names: tuple[str, ...], i: int) -> tuple[dict[str, Any], list[str]]:
        """Make the step that runs `names` the current one, from iteration `i` on; its validated body and output
        nodes."""
        steps = self.steps
        if names != self.step.names:
            try:
                step = steps.step(names)
            except DiscomfortError as error:
                raise LoopError(f"{self._where(i)}: the workflow(s) next named ({' + '.join(names)}) cannot run: "
                                f"{error}", loop_id=self.plan.loop_id, iteration=i + 1,
                                record=self.record) from error  # fmt: skip
            self.step, self.plan = step, step.plan
            self._carries = frozenset(steps.carries(step))
            self._enclosing = step.plan.enclosing_tokens()
        if steps.conditional:
            self._check_step(i)
            self.lane = self.runner.lane(self.plan.fingerprint)  # each file keeps its cache (its models) apart
        return self._validated(self.plan.prompt, self.plan.fingerprint)

    def _check_step(self, i: int) -> None:
        """A conditional pipeline's step: the same files as when the checkpoint being resumed ran them, and no
        entry waiting for a value that nothing gave."""
        plan, record, key = self.plan, self.record, "\n".join(self.step.names)
        if key in self._expected and self._expected[key] != plan.fingerprint:
            raise CheckpointMismatch(
                f"{self.settings.checkpoint} holds a checkpoint of a run in which {self.step.label} was another "
                "workflow (it changed since); resume refused. Use another checkpoint folder, or run without resume "
                "to start over"
            )
        self._fingerprints[key] = plan.fingerprint
        for uid in plan.entries:
            if uid == ITERATION_UID or uid in self.per_iteration or uid in record.values or uid in self.initial:
                continue
            if not plan.uid_has_feeder(uid):
                raise LoopError(f"{self._where(i)}: {self.step.label} takes uid {uid!r}, which nothing gave yet: no "
                                "earlier iteration's workflow gives it, and it has no initial value or feeder",
                                loop_id=plan.loop_id, iteration=i + 1, record=record)  # fmt: skip

    def _offer(self, i: int) -> None:
        """Hand every entry its value for iteration `i`, and note which version of it that is."""
        entries, record, versions = self.plan.entries, self.record, self._versions
        fresh = {uid: make(i) for uid, make in self.per_iteration.items() if uid in entries}
        self.carry.start_iteration()
        versions.clear()
        for uid in entries:
            if uid in fresh:
                self.carry.offer(uid, fresh[uid])
                versions[uid] = i
            elif uid == ITERATION_UID:
                self.carry.offer(uid, i)
                versions[uid] = i
            elif uid in self._carries and uid in record.values:
                self.carry.offer(uid, record.values[uid])
                versions[uid] = self._given_at.get(uid, -1) + 1
            else:
                if uid in self.initial:
                    self.carry.offer(uid, self.initial[uid])
                else:
                    self.carry.offer_feeder(uid)
                versions[uid] = 0

    def _collect(self, i: int, started: float) -> tuple[str, ...] | None:
        """Take what iteration `i` gave and commit it; the names of the next step, or None when the loop stops."""
        plan, record, settings, given = self.plan, self.record, self.settings, self.carry.given
        missing = [uid for uid in plan.exits if uid not in given]
        if missing:
            raise LoopError(f"{self._where(i)}: exit port(s) of {', '.join(missing)} gave no value (a node upstream "
                            "of them was blocked)", loop_id=plan.loop_id, iteration=i + 1, record=record)  # fmt: skip
        try:
            stop = bool(settings.stop_when) and settings.stop_when in given and _truthy(given[settings.stop_when])
        except TypeError as error:
            raise LoopError(f"{self._where(i)}: stop_when {settings.stop_when!r} {error}", loop_id=plan.loop_id,
                            iteration=i + 1, record=record) from None  # fmt: skip
        try:
            following = None if stop else self.steps.following(self.step, given)
        except SettingsError as error:
            raise LoopError(f"{self._where(i)}: {error}", loop_id=plan.loop_id, iteration=i + 1,
                            record=record) from None  # fmt: skip
        ended = following is None
        record.values.update(given)
        self._given_at.update(dict.fromkeys(given, i))
        record.add_shown(self.lane.ui_outputs())
        for uid in settings.accumulate:
            if uid in given:  # in a conditional pipeline, not every file gives every uid
                record.accumulated[uid].append(given[uid])
        if self.step.names:  # a pipeline of files: which ones ran
            record.path.append(self.step.names)
        if self.checkpoint is not None:
            self.checkpoint.save(i + 1, record.values, stopped=ended,
                                 lengths={uid: len(items) for uid, items in record.accumulated.items()},
                                 path=record.path, next=following, plans=self._fingerprints)  # fmt: skip
        record.iterations = i + 1
        record.seconds.append(time.perf_counter() - started)
        if self.progress is not None:
            self.progress(i + 1, settings.iterations)
        record.stopped_early = ended and i + 1 < settings.iterations
        return following

    def _skipped(self, i: int, why: str) -> bool:
        """With on_error "skip", record iteration `i` as skipped and go on; otherwise the caller raises."""
        if self.settings.on_error != "skip":
            return False
        log.warning("iteration %d skipped: %s", i + 1, why)
        self.record.skipped.append((i + 1, why))
        self.record.iterations = i + 1
        if self.progress is not None:
            self.progress(i + 1, self.settings.iterations)
        return True

    def _unseen_uids(self) -> None:
        """A conditional pipeline's settings may name uids of files the path did not reach: said, not refused."""
        settings, given = self.settings, self.record.values
        for uid in (settings.stop_when, *settings.accumulate):
            if uid and uid not in given:
                files = describe_path(self.record.path) or self.steps.first.label
                log.warning("loop %s: %r names no uid that a workflow of its path gave (%s)", self.steps.first.label,
                            uid, files)  # fmt: skip

    def _keep(self) -> None:
        """Store the accumulated values where the settings say, for another run to read (serialization.kept)."""
        from ..serialization.kept import keep

        record = self.record
        values = {uid: record.joined(uid) for uid in self.settings.accumulate}
        try:
            keep(self.settings.keep, values, iterations=record.iterations, path=record.path)
        except OSError as error:
            raise SettingsError(f"loop {self.plan.loop_id}: the accumulated values could not be kept in "
                                f"{self.settings.keep}: {error}") from error  # fmt: skip

    def _initial_values(self) -> None:
        """Zero iterations return the initial values, which may need the body's feeders to run once."""
        plan, record, initial, carry = self.plan, self.record, self.initial, self.carry
        record.values.update({uid: value for uid, value in initial.items() if uid in plan.entries})
        pending = [uid for uid in plan.entries if uid not in initial and uid != ITERATION_UID]
        if not pending:
            return
        # A prompt of just the feeders, each into a carry-in and straight out through a carry-out.
        starts = [plan.entries[uid][0] for uid in pending]
        needed = Graph.of(plan.prompt).ancestors(starts) | set(starts)
        prompt = {node_id: plan.prompt[node_id] for node_id in needed}
        uid_of = {node_id: uid for uid, ids in plan.entries.items() for node_id in ids}
        tokens = {node_id: carry.token(uid_of[node_id], 0) for node_id in prompt if node_id in uid_of}
        carry.start_iteration()
        for uid in plan.entries:
            if uid in initial:
                carry.offer(uid, initial[uid])
            else:
                carry.offer_feeder(uid)
        for uid, carry_in in zip(pending, starts, strict=True):
            prompt[f"{carry_in}.out"] = {"class_type": CARRY_OUT, "inputs": {"token": "", "value": [carry_in, 0]}}
            tokens[f"{carry_in}.out"] = carry.token(uid, 0)
        prompt = plan.instantiate(prompt, tokens)
        _, outputs = self._validated(prompt)
        try:
            self.runner.run(prompt, f"{self.prompt_id}:initial", outputs, self.extra_data)
        except BodyError as error:
            raise LoopError(f"loop {plan.loop_id}, initial values: {error}", loop_id=plan.loop_id, iteration=0,
                            node_id=error.node_id, class_type=error.class_type, record=record,
                            traceback=error.traceback, inputs=error.inputs) from error  # fmt: skip
        record.values.update(carry.given)

    def _tokens(self, iteration: int) -> dict[str, str]:
        """This iteration's tokens, with those of the loops around this one. An entry's token changes exactly when
        its value does; carry-outs change every iteration, so they always run."""
        tokens = dict(self._enclosing)
        for uid, node_ids in self.plan.entries.items():
            token = self.carry.token(uid, self._versions[uid])
            for node_id in node_ids:
                tokens[node_id] = token
        for uid, node_id in self.plan.exits.items():
            tokens[node_id] = self.carry.token(uid, iteration)
        return tokens

    def _validated(self, prompt: dict[str, Any], key: str | None = None) -> tuple[dict[str, Any], list[str]]:
        """`prompt` validated (with `key`, once per structure: the runner keeps it), and its output nodes."""
        runner = self.lane
        try:
            if key is None:
                return prompt, runner.validate(prompt, self.prompt_id)
            return runner.validated(key, prompt, self.prompt_id)
        except PromptValidationError as error:
            raise LoopError(f"loop {self.plan.loop_id}: its body {self.plan.body_name!r} is not valid: {error}",
                            loop_id=self.plan.loop_id) from error  # fmt: skip

    def _where(self, i: int) -> str:
        return f"loop {self.plan.loop_id}, iteration {i + 1}/{self.settings.iterations}"


def _open_checkpoint(plan: LoopPlan, settings: LoopSettings, initial: Mapping[str, Any], record: LoopRecord,
                     prompt_id: str) -> tuple[Checkpoint | None, CheckpointState | None]:  # fmt: skip
    """Set up where accumulated values go; with a checkpoint, also pick up a previous run's state (returned)."""
    if settings.checkpoint is None:
        if settings.storage != "ram":
            record.store = DiskStore()
        record.accumulated = make_lists(settings.storage, record.store, settings.accumulate, settings.memory_budget)
        return None, None
    checkpoint = Checkpoint(settings.checkpoint, _checkpoint_fingerprint(plan, settings, initial), settings.accumulate,
                            holder=f"loop {plan.loop_id} of prompt {prompt_id}")  # fmt: skip
    checkpoint.open()  # one run at a time; the record lets it go when the front is done with the values
    record.checkpoint = checkpoint
    state = None
    if settings.resume and checkpoint.exists():
        state = checkpoint.load()
        record.iterations = state.iteration
        record.values.update(state.values)
        record.stopped_early = state.stopped
        log.info("loop %s resumes after iteration %d from %s", plan.loop_id, state.iteration, checkpoint.directory)
    else:
        checkpoint.reset()
    # A checkpoint keeps every accumulated value on disk, whatever the storage setting, so a resume has them.
    lengths = {uid: len(items) for uid, items in state.accumulated.items()} if state is not None else {}
    record.accumulated = {uid: checkpoint.accumulation(uid, lengths.get(uid, 0)) for uid in settings.accumulate}
    return checkpoint, state


def _checkpoint_fingerprint(plan: LoopPlan, settings: LoopSettings, initial: Mapping[str, Any]) -> str:
    hashed = hashlib.sha256(plan.fingerprint.encode())
    hashed.update(json.dumps([settings.stop_when, list(settings.accumulate)]).encode())
    for uid in sorted(initial):
        hashed.update(uid.encode())
        hashed.update(digest(initial[uid]))  # data and tensors by content, live objects (MODEL...) by type
    return hashed.hexdigest()


def _check_initial_values(plan: LoopPlan, initial: Mapping[str, Any]) -> None:
    unknown = sorted(set(initial) - set(plan.entries))
    if unknown:
        known = ", ".join(sorted(plan.entries)) or "none"
        raise SettingsError(
            f"loop {plan.loop_id}: no entry port in body {plan.body_name!r} takes uid {', '.join(unknown)} "
            f"(entries: {known})"
        )
    for uid in plan.entries:
        if uid != ITERATION_UID and uid not in initial and not plan.uid_has_feeder(uid):
            raise SettingsError(
                f"loop {plan.loop_id}: uid {uid!r} has no initial value: link it into the loop node, or feed its "
                "entry port (making it PASSTHRU)"
            )


def _truthy(value: Any) -> bool:
    """Whether a stop value says stop: a BOOLEAN, or a number other than 0; a tensor or a numpy array when it has
    elements and all are true. Anything else raises TypeError: to Python the text "false" is true."""
    if isinstance(value, (bool, int, float)):
        return bool(value)
    if is_tensor(value):
        return bool(value.numel() > 0 and value.bool().all())
    if is_ndarray(value) or type(value).__module__ == "numpy":  # numpy arrays and scalars (numpy.bool_)
        import numpy as np

        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return bool(array.size > 0 and array.all())
    raise TypeError(f"gave a {type(value).__name__} ({shown(value)}); a stop value is a BOOLEAN, a number or a "
                    "tensor")  # fmt: skip
