// The iteration counter: "↻ i/N" on a loop node while it runs, then how the run ended ("settled after 4/40",
// "cancelled at 51/2000", "failed at 6/8"), with the time per iteration; it stays until the loop runs again.
// Fed by the messages the server already sends: the loop node's progress text is "iteration i/N".

const PROGRESS = /^iteration (\d+)\/(\d+)/;

/** One loop node's run, as the messages tell it. Pure: `now` is given, so tests can replay a run. */
export class LoopRun {
  constructor(total, now) {
    this.done = 0;
    this.total = total;
    this.started = now;
    this.last = now;
    this.status = "running"; // running, settled, done, cancelled, failed
  }

  progress(done, total, now) {
    this.done = done;
    this.total = total;
    this.last = now;
  }

  finish(how) {
    if (this.status !== "running") return;
    if (how === "success") this.status = this.done < this.total ? "settled" : "done";
    else this.status = how;
  }

  get secondsPerIteration() {
    return this.done > 0 ? (this.last - this.started) / 1000 / this.done : null;
  }

  get text() {
    const { done, total } = this;
    const main = {
      running: `↻ ${done}/${total}`,
      settled: `✓ settled after ${done}/${total}`,
      done: `✓ ${done}/${total}`,
      cancelled: `■ cancelled at ${done}/${total}`,
      failed: `✗ failed at ${Math.min(done + 1, total)}/${total}`,
    }[this.status];
    const pace = this.secondsPerIteration;
    return pace === null ? main : `${main} · ${formatSeconds(pace)}/it`;
  }
}

export function formatSeconds(seconds) {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 10) return `${seconds.toFixed(2)} s`;
  return `${seconds.toFixed(1)} s`;
}

/** Every loop's run, keyed by node id; `onChange(nodeId, run)` after each message that changed one. */
export class Counter {
  constructor(onChange, clock = () => performance.now()) {
    this.runs = new Map();
    this.onChange = onChange;
    this.clock = clock;
  }

  /** A progress text from the server; true when it was a loop's. */
  progressText(nodeId, text) {
    const match = PROGRESS.exec(String(text ?? ""));
    if (!match) return false;
    const [done, total] = [Number(match[1]), Number(match[2])];
    const now = this.clock();
    let run = this.runs.get(nodeId);
    if (!run || run.status !== "running" || done < run.done) {
      run = new LoopRun(total, now);
      this.runs.set(nodeId, run);
    }
    run.progress(done, total, now);
    this.onChange(nodeId, run);
    return true;
  }

  /** The prompt ended: "success", "cancelled" or "failed". Loops that were not running keep what they showed. */
  finish(how) {
    for (const [nodeId, run] of this.runs) {
      if (run.status !== "running") continue;
      run.finish(how);
      this.onChange(nodeId, run);
    }
  }

  get(nodeId) {
    return this.runs.get(String(nodeId));
  }
}
