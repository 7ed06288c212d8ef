"""Independent iterations fanned out over Ray: each worker an actor holding an embedded ComfyUI.

A worker boots the Python API's `Runtime` with the driver's ComfyUI, custom nodes and folders, and keeps it, so its
private executor loads models once, not once per item. Each item runs as a one-iteration run of the same plan on
the same engine (`Runtime.run_plan`, `run_loop`); the fan-out only decides which worker runs which iteration.
Items go to workers as they free up; results come back through Ray's object store (tensors by reference, never
through JSON) and are handed on in item order.

Faults: Ray restarts a worker whose process died (`max_restarts`); the item it was running goes first in the queue
and runs on the next worker that frees up (Ray's own task retry is off, so the item is not pinned to the dead
worker's replacement while it boots). An item that fails for its own reason follows `on_error`, as in-process.

Whatever crosses to a worker is plain data (a plan's source, items as dicts, settings as dicts), and the actor
class is built by a function, so Ray ships it by value: inside ComfyUI this package is imported under a path-named
module that a worker could not import; the worker imports its own copy as `discomfort`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DiscomfortError, LoopError, SettingsError
from . import compat
from .fanout import Ledger, Schedule, StoredValues, check_independent, describe, item_makers, run_fingerprint
from .plan import LoopPlan

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
MAX_RESTARTS = 3  # a worker's process is brought back this many times before it is given up
BOOT_TIMEOUT = 600.0  # seconds to wait for a first worker (booting ComfyUI, or the cluster finding room for one)
POLL = 0.2  # seconds between looks at the interrupt flag while waiting on workers
INSTALL_HINT = "pip install 'discomfort[ray]'"

Progress = Callable[[int, int, Mapping[str, Any]], None]  # (handled items, all items, the item's values)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DiscomfortError(f"fanning out over workers needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def comfy_setup() -> dict[str, Any]:
    """What a worker needs to boot the ComfyUI this process runs: its folder, custom nodes and every folder it
    reads and writes (output, input, temp, user, models). Read live, so a changed output folder is followed."""
    import folder_paths

    paths = {name: list(entry[0]) for name, entry in folder_paths.folder_names_and_paths.items()}
    return {
        "comfyui": str(Path(folder_paths.__file__).resolve().parent),
        "custom_nodes": paths.pop("custom_nodes", []),
        "folders": {"output": folder_paths.get_output_directory(), "input": folder_paths.get_input_directory(),
                    "temp": folder_paths.get_temp_directory(), "user": folder_paths.get_user_directory()},
        "model_paths": paths,
    }  # fmt: skip


def _connect(address: str | None) -> tuple[Any, bool]:
    """Ray, connected: to `address`, $RAY_ADDRESS, the cluster this process is connected to already, or a local
    Ray started here. Says whether the connection is ours to end."""
    ray = require_ray()
    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # A Ray of our own listens on loopback only: this machine's ComfyUI is not a cluster's head.
        ray.init(address="local", include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    return ray, True


def _shared() -> types.ModuleType:
    # Discomfort can be in one process twice (loaded by ComfyUI from custom_nodes, and imported as `discomfort`):
    # both copies share one pool, as they share one registry of running loops (carry._process_registry).
    holder = sys.modules.setdefault("_discomfort_ray_pool", types.ModuleType("_discomfort_ray_pool"))
    if not hasattr(holder, "pool"):
        holder.pool, holder.users = None, 0
    return holder


class WorkerPool:
    """`workers` Ray actors, each an embedded ComfyUI booted like this process's.

    One pool per process, shared by its fronts (the Python API, the loop nodes): workers cost a ComfyUI boot and
    their loaded models, and Ray allows one connection per process. `acquire` gives the pool, made or remade to
    the asked size; `release` ends the last user's hold, stopping the workers and a local Ray started for them.
    """

    @classmethod
    def acquire(cls, workers: int, address: str | None = None, *, hold: bool = True) -> WorkerPool:
        """The process's pool of `workers` workers on `address`. `hold`: count a user that will release() it."""
        shared = _shared()
        if shared.pool is not None and not shared.pool.matches(workers, address):
            shared.pool.close()
        if shared.pool is None:
            shared.pool = cls(workers, address)
        shared.users += hold
        return shared.pool

    @classmethod
    def release(cls) -> None:
        shared = _shared()
        shared.users = max(0, shared.users - 1)
        if shared.users == 0 and shared.pool is not None:
            shared.pool.close()

    def __init__(self, workers: int, address: str | None = None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise SettingsError(f"workers must be a whole number of at least 1, got {workers!r}")
        self.workers, self.address = workers, address
        self.setup = comfy_setup()
        self._ray, self._owns_ray = _connect(address)
        gpus = 1 if self._ray.cluster_resources().get("GPU", 0) >= 1 else 0  # one ComfyUI per GPU
        # Items run one at a time on a worker; `ready` and `interrupt` answer beside them, in a group of their own.
        actor = self._ray.remote(concurrency_groups={"control": 1})(_actor_class(self._ray))
        options = dict(num_cpus=1, num_gpus=gpus, max_restarts=MAX_RESTARTS, max_task_retries=0,
                       scheduling_strategy="SPREAD")  # fmt: skip
        self.actors: list[Any] | None = [actor.options(**options).remote(str(PACKAGE_ROOT), self.setup)
                                         for _ in range(workers)]  # fmt: skip
        self.where: dict[int, dict[str, Any]] = {}  # worker number -> its process and Ray node, once it is up
        self.lost = 0  # items whose worker died under them, over the pool's life
        self._run: _Run | None = None

    def matches(self, workers: int, address: str | None) -> bool:
        same_nodes = comfy_setup()["custom_nodes"] == self.setup["custom_nodes"]
        return self.actors is not None and (workers, address) == (self.workers, self.address) and same_nodes

    def wait(self, timeout: float = BOOT_TIMEOUT) -> dict[int, dict[str, Any]]:
        """Wait until every worker has booted; return where each runs (its process id and Ray node)."""
        assert self.actors is not None, "the pool is closed"
        found = self._ray.get([actor.ready.remote() for actor in self.actors], timeout=timeout)
        self.where.update(enumerate(found))
        return dict(self.where)

    def running(self) -> dict[int, Any]:
        """What each busy worker runs now: item index -> worker (actor handle)."""
        run = self._run
        return {index: worker for worker, index in list(run.busy.values())} if run is not None else {}

    def close(self) -> None:
        if self.actors is None:
            return
        if self._ray.is_initialized():  # else Ray ended already, and its actors with it
            for actor in self.actors:
                self._ray.kill(actor, no_restart=True)
        self.actors = None
        shared = _shared()
        if shared.pool is self:
            shared.pool, shared.users = None, 0
        if self._owns_ray:
            self._ray.shutdown()

    def run(self, plan: LoopPlan, source: Mapping[str, Any], items: Sequence[Mapping[str, Any]], settings: Any, *,
            initial: Mapping[str, Any] | None = None, extra_data: Mapping[str, Any] | None = None,
            progress: Progress | None = None, record: Any = None) -> Any:  # fmt: skip
        """Run every item of `items` (checked dicts, see fanout.check_items) as one iteration of `plan` on the
        workers; return the LoopRecord, filled in item order as results come in.

        Args:
            source: how a worker makes `plan` itself: {"workflow": api_prompt, "name": name} (plan_workflow) or
                {"loop_node": prepared_node, "loop_id": id} (plan_loop).
            settings: the loop's LoopSettings; `iterations` is the number of items, `stop_when` is refused.
        """
        from .engine import LoopRecord

        if self.actors is None:
            raise DiscomfortError("the worker pool is closed")
        check_independent(plan)
        if settings.stop_when:
            raise SettingsError(f"loop {plan.loop_id}: stop_when needs the iterations in order; a fan-out runs them "
                                "side by side (run it in-process, workers 0)")  # fmt: skip
        settings.check(plan)
        record = record if record is not None else LoopRecord()
        return _Run(self, plan, dict(source), list(items), settings, dict(initial or {}), dict(extra_data or {}),
                    progress, record).go()  # fmt: skip


class _Run:
    """One fan-out run's state: the queue, what each worker holds, results waiting for their turn."""

    def __init__(self, pool, plan, source, items, settings, initial, extra_data, progress, record):
        from .fanout import InOrder

        self.pool, self.ray, self.plan, self.items, self.settings = pool, pool._ray, plan, items, settings
        self.progress, self.record, self.total = progress, record, len(items)
        self.ledger: Ledger | None = None
        finished: dict[int, dict[str, Any]] = {}
        if settings.checkpoint is not None:
            fingerprint = run_fingerprint(plan, settings.accumulate, initial, items)
            self.ledger = Ledger(settings.checkpoint, fingerprint, len(items), holder=f"loop {plan.loop_id}")
            finished = self.ledger.open(settings.resume)
            if finished:
                log.info("loop %s resumes: %d of %d items finished in %s", plan.loop_id, len(finished), len(items),
                         settings.checkpoint)  # fmt: skip
        self.kept: list[int] = []  # items whose values were accumulated, in order (read from the ledger)
        self._open_accumulation()
        self.order = InOrder(range(len(items)))
        self.schedule = Schedule(i for i in range(len(items)) if i not in finished)
        job = {"source": source, "initial": initial, "extra_data": extra_data, "folders": pool.setup["folders"],
               "model_paths": pool.setup["model_paths"], "accumulate": list(settings.accumulate)}  # fmt: skip
        self.job = [self.ray.put(job)]  # in a list, so a worker fetches it once per run, not once per item
        self.failure: LoopError | None = None
        self.interrupt: BaseException | None = None
        self.busy: dict[Any, tuple[Any, int]] = {}  # result ref -> (worker, item)
        for index, entry in sorted(finished.items()):
            self._release(index, {**entry, "from_ledger": True})

    def go(self) -> Any:
        ray, started = self.ray, time.monotonic()
        idle: deque = deque()
        busy = self.busy
        waking: dict[Any, Any] = {worker.ready.remote(): worker for worker in self.pool.actors}  # ping -> worker
        last_death: BaseException | None = None
        self.pool._run = self
        try:
            while True:
                while idle and self.schedule and self.failure is None and self.interrupt is None:
                    worker, index = idle.popleft(), self.schedule.take()
                    busy[worker.run.remote(self.job, self.items[index], index)] = (worker, index)
                if not busy and (not self.schedule or self.failure is not None or self.interrupt is not None):
                    break
                if not busy and not waking:
                    raise DiscomfortError(f"every worker died; the last said: {_first_line(last_death)}")
                if not self.pool.where and time.monotonic() - started > BOOT_TIMEOUT:
                    raise DiscomfortError(f"no worker started in {BOOT_TIMEOUT:.0f} s (the cluster has "
                                          f"{ray.cluster_resources()}; each worker asks for 1 CPU)")  # fmt: skip
                ready, _ = ray.wait([*busy, *waking], num_returns=1, timeout=POLL)
                self._look_for_interrupt(busy)
                for ref in ready:
                    if ref in waking:
                        worker = waking.pop(ref)
                        try:
                            self.pool.where[self.pool.actors.index(worker)] = ray.get(ref)
                        except ray.exceptions.RayActorError as error:  # it cannot boot, or its restarts are used up
                            last_death = error
                            log.warning("a worker is gone for good: %s", _first_line(error))
                        else:
                            idle.append(worker)
                        continue
                    worker, index = busy.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError as error:
                        last_death = error
                        self._lost(index, error)
                        waking[worker.ready.remote()] = worker  # back in the pool once Ray restarted it
                        continue
                    except ray.exceptions.RayTaskError as error:  # the worker's own code failed: a bug, not input
                        result = {"failed": f"the worker failed: {_first_line(error)}"}
                    self._done(index, result)
                    idle.append(worker)
        finally:
            self.pool._run = None
            if self.ledger is not None:
                self.ledger.close()
        if self.interrupt is not None:
            raise self.interrupt
        if self.failure is not None:
            raise self.failure
        return self.record

    def _look_for_interrupt(self, busy: Mapping[Any, tuple[Any, int]]) -> None:
        if self.interrupt is not None:
            return
        try:
            compat.raise_if_interrupted()
        except compat.interrupt_exception() as interrupt:
            # Stop at once: what the workers run is interrupted too; every finished item is kept.
            self.interrupt = interrupt
            self.schedule.drop()
            for worker, _index in busy.values():
                worker.interrupt.remote()

    def _lost(self, index: int, error: BaseException) -> None:
        self.pool.lost += 1
        if self.schedule.lost(index):
            log.warning("a worker died running %s; it runs again on the next free worker (%s)",
                        describe(self.items[index], index, self.total), _first_line(error))  # fmt: skip
            return
        self._done(index, {"failed": f"its worker died {self.schedule.attempts(index)} times running it "
                                     f"({_first_line(error)})"})  # fmt: skip

    def _done(self, index: int, result: dict[str, Any]) -> None:
        if result.get("interrupted"):
            if self.interrupt is None:  # not ours: the worker's ComfyUI was interrupted by someone else
                self._lost(index, DiscomfortError("the worker was interrupted"))
            return  # ours: not finished, a rerun does it
        if result.get("fatal"):  # the body cannot run at all (it does not validate): no item would do better
            self.failure = self.failure or LoopError(f"loop {self.plan.loop_id}: {result['fatal']}",
                                                     loop_id=self.plan.loop_id, record=self.record)  # fmt: skip
            self.schedule.drop()
            return
        if "failed" in result and self.settings.on_error != "skip":
            where = describe(self.items[index], index, self.total)
            if self.failure is None or index + 1 < (self.failure.iteration or 0):
                self.failure = LoopError(
                    f"loop {self.plan.loop_id}, {where}: {result['failed']}", loop_id=self.plan.loop_id,
                    iteration=index + 1, node_id=result.get("node_id"), class_type=result.get("class_type"),
                    record=self.record,
                )  # fmt: skip
            self.schedule.drop()  # what runs already finishes and is kept
            return
        entry = {"seconds": result.get("seconds", 0.0), "shown": result.get("shown", {})}
        if "failed" in result:
            entry = {"skipped": result["failed"]}
        if self.ledger is not None:
            self.ledger.finish(index, result.get("values", {}) if "failed" not in result else {}, entry)
        self._release(index, {**entry, "values": result.get("values", {})})

    def _release(self, index: int, entry: dict[str, Any]) -> None:
        for done, item in self.order.add(index, entry):
            record = self.record
            if "skipped" in item:
                log.warning("%s skipped: %s", describe(self.items[done], done, self.total), item["skipped"])
                record.skipped.append((done + 1, item["skipped"]))
            else:
                values = self._accumulate(done, item)
                record.values.update(values)
                record.add_shown(item.get("shown", {}))  # what its body showed, by node
                record.seconds.append(item.get("seconds", 0.0))
            record.iterations = done + 1
            if self.progress is not None:
                self.progress(done + 1, self.total, item.get("values", {}))

    def _open_accumulation(self) -> None:
        from ..serialization.stores import DiskStore, make_lists

        record, settings = self.record, self.settings
        if self.ledger is not None:  # the ledger holds every value already: read them from there, in order
            record.accumulated = {uid: StoredValues(self.ledger, uid, self.kept) for uid in settings.accumulate}
            return
        if settings.storage != "ram":
            record.store = DiskStore()
        record.accumulated = make_lists(settings.storage, record.store, settings.accumulate, settings.memory_budget)

    def _accumulate(self, index: int, item: Mapping[str, Any]) -> dict[str, Any]:
        if self.ledger is not None:
            self.kept.append(index)
            return {} if item.get("from_ledger") else dict(item.get("values", {}))
        values = item.get("values", {})
        for uid in self.settings.accumulate:
            self.record.accumulated[uid].append(values[uid])
        return dict(values)


def _first_line(error: BaseException | None) -> str:
    text = str(error or "no reason given").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # Ray puts the worker's traceback first and the exception last.
    return lines[-1].strip() if lines else text


class ItemRunner:
    """The worker's side: an embedded ComfyUI and the plan of the run in progress; runs one item at a time."""

    def __init__(self, setup: Mapping[str, Any]):
        from ..api import Runtime

        folders = setup["folders"]
        self.runtime = Runtime(setup["comfyui"], output_directory=folders["output"], input_directory=folders["input"],
                               user_directory=folders["user"], temp_directory=folders["temp"],
                               custom_nodes=setup["custom_nodes"])  # fmt: skip
        self.runtime.start()
        self._job_id: str | None = None
        self._job: dict[str, Any] = {}
        self._plan: LoopPlan | None = None

    def ready(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def run(self, job_box: list, item: Mapping[str, Any], index: int) -> dict[str, Any]:
        from .engine import LoopSettings

        self._take_job(job_box)
        job, plan = self._job, self._plan
        assert plan is not None
        settings = LoopSettings(1, accumulate=tuple(job["accumulate"]))
        started = time.perf_counter()
        interrupt = compat.interrupt_exception()
        try:
            record = self.runtime.run_plan(
                plan,
                settings,
                initial=job["initial"],
                extra_data=job["extra_data"],
                per_iteration=item_makers(item, plan, index),
                prompt_id=f"item-{index}",
            )
        except interrupt:
            import nodes

            nodes.interrupt_processing(False)  # handled; the next item must not see it
            return {"interrupted": True}
        except LoopError as error:
            if error.iteration is None:
                return {"fatal": str(error)}
            cause = error.__cause__ or error
            return {"failed": str(cause), "node_id": error.node_id, "class_type": error.class_type}
        values = {uid: record.accumulated[uid][0] for uid in settings.accumulate}
        return {"values": values, "shown": record.shown, "seconds": time.perf_counter() - started}

    def interrupt(self) -> None:
        import nodes

        nodes.interrupt_processing(True)

    def _take_job(self, job_box: list) -> None:
        import ray

        job_id = job_box[0].hex()
        if job_id == self._job_id:
            return
        import nodes

        nodes.interrupt_processing(False)  # an interrupt meant for the last run must not stop this one
        job = ray.get(job_box[0])
        _follow_folders(job["folders"], job["model_paths"])
        source = job["source"]
        from .plan import plan_loop, plan_workflow

        self._plan = plan_workflow(source["workflow"], source["name"]) if "workflow" in source else \
            plan_loop(source["loop_node"], source["loop_id"])  # fmt: skip
        self._job, self._job_id = job, job_id


def _follow_folders(folders: Mapping[str, str], model_paths: Mapping[str, list[str]]) -> None:
    import folder_paths

    for setter, path in ((folder_paths.set_output_directory, folders["output"]),
                         (folder_paths.set_input_directory, folders["input"]),
                         (folder_paths.set_temp_directory, folders["temp"]),
                         (folder_paths.set_user_directory, folders["user"])):  # fmt: skip
        setter(path)
    for name, paths in model_paths.items():
        known = folder_paths.folder_names_and_paths.get(name)
        extensions = known[1] if known else set()
        folder_paths.folder_names_and_paths[name] = (list(paths), extensions)


def _actor_class(ray: Any) -> type:
    """The actor, built here so that Ray ships it by value: it names nothing of this package's modules, and imports
    the worker's own copy of Discomfort as `discomfort` (from this folder when the worker sees it, as on one
    machine or a shared disk; else an installed `discomfort`)."""

    class DiscomfortWorker:
        def __init__(self, package_root: str, setup: dict) -> None:
            import importlib
            import importlib.util
            import os
            import sys

            init = os.path.join(package_root, "__init__.py")
            loaded = sys.modules.get("discomfort")
            if loaded is None and os.path.isfile(init):
                spec = importlib.util.spec_from_file_location("discomfort", init,
                                                              submodule_search_locations=[package_root])  # fmt: skip
                module = importlib.util.module_from_spec(spec)
                sys.modules["discomfort"] = module
                spec.loader.exec_module(module)
            self.runner = importlib.import_module("discomfort.executor.ray_workers").ItemRunner(setup)

        @ray.method(concurrency_group="control")
        def ready(self) -> dict:
            return self.runner.ready()

        def run(self, job_box: list, item: dict, index: int) -> dict:
            return self.runner.run(job_box, item, index)

        @ray.method(concurrency_group="control")
        def interrupt(self) -> None:
            self.runner.interrupt()

    return DiscomfortWorker
