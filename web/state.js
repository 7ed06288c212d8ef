// One analysis of the graph on screen, shared by every module: recomputed once after each change, then handed to
// whoever listens (sockets, badges, hull). Reading it never recomputes more than once per change.

import { plainGraph } from "./graph.js";
import { analyse } from "./roles.js";

export class GraphState {
  constructor(graphOf) {
    this.graphOf = graphOf; // () => the LGraph on screen
    this.listeners = [];
    this.analysis = null;
    this.graph = null;
    this.scheduled = false;
  }

  /** The analysis of the graph on screen, computed now if something changed since the last one. */
  current() {
    const graph = this.graphOf();
    if (!graph) return null;
    if (this.analysis === null || this.graph !== graph) {
      this.graph = graph;
      this.analysis = analyse(plainGraph(graph));
    }
    return this.analysis;
  }

  /** Something changed: forget the analysis and, once the current event is over, tell the listeners. */
  invalidate() {
    this.analysis = null;
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.refresh();
    });
  }

  refresh() {
    const analysis = this.current();
    if (!analysis) return;
    for (const listener of this.listeners) listener(analysis, this.graph);
  }

  subscribe(listener) {
    this.listeners.push(listener);
  }
}
