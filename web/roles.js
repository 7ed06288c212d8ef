// What the backend decides about ports and loop bodies, decided the same way here (architecture decision 12).
// Pure: a plain graph in, plain facts out; no app, no LiteGraph. The rules are the README's (issue 13):
//
// - A port's mode is what its links say: out only INPUT, in only OUTPUT, both PASSTHRU, none UNCONNECTED. Muted
//   and bypassed ports are not ports.
// - A loop's body is named by its `body` widget; its ports are the linked ports tagged with that name. A workflow
//   file is a body too: its linked ports that sit in no loop's body.
// - Within one body the ports of one uid form chains along links. Its entries are the upstream-most ports that take
//   a value (INPUT or PASSTHRU, no port of the uid among their ancestors); its exit is the downstream-most port
//   that gives one (OUTPUT or PASSTHRU, none among its descendants); a port between them passes values through.
//   Two exits of one uid are an error; the reserved uid `iteration` is an entry only.
// - The body's nodes: the entries, everything downstream of them, the exits, and every ancestor of those (a loader
//   feeding the body runs inside it, once: "lighter"), plus the bodies of loops found among them.
//
// graph = {nodes: [{id, type, mode, widgets: {name: value}}], links: [{origin, target, targetInput}]}; ids are
// strings. `analyse(graph)` returns {ports: Map, loops: Map, workflow}; see `toPlain` for their shape.

export const PORT = "DiscomfortPort";
export const LOOP_CLASSES = new Set(["DiscomfortLoop", "DiscomfortFolderLoop"]);
export const ITERATION_UID = "iteration";
export const VALUE_INPUT = "value";
export const Mode = Object.freeze({
  INPUT: "INPUT",
  OUTPUT: "OUTPUT",
  PASSTHRU: "PASSTHRU",
  UNCONNECTED: "UNCONNECTED",
});

const MUTED = 2;
const BYPASSED = 4;
// Frontend-only node types, as workflow/convert.py reads them: Reroutes pass their link on, the rest carry none.
const THROUGH_TYPES = new Set(["Reroute"]);
const GONE_TYPES = new Set(["PrimitiveNode", "Note", "MarkdownNote"]);

export function parseList(raw) {
  // Comma-separated, blanks and repeats dropped, order kept: ports/discovery.py's parse_tags.
  const items = String(raw ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  return [...new Set(items)];
}

export function roleName(port) {
  if (!port.scope || !port.uid) return null;
  if (port.entry && port.exit) return "entry · exit";
  if (port.entry) return "entry";
  if (port.exit) return "exit";
  return "pass-through";
}

/** Parents and children of every node that runs, with Reroutes and bypassed nodes passing their links on. */
class Adjacency {
  constructor(graph) {
    const kind = new Map();
    for (const node of graph.nodes) {
      if (node.mode === MUTED || GONE_TYPES.has(node.type)) kind.set(node.id, "gone");
      else if (node.mode === BYPASSED || THROUGH_TYPES.has(node.type)) kind.set(node.id, "through");
      else kind.set(node.id, "node");
    }
    const out = new Map();
    for (const link of graph.links) {
      if (!kind.has(link.origin) || !kind.has(link.target)) continue;
      if (!out.has(link.origin)) out.set(link.origin, []);
      out.get(link.origin).push(link);
    }
    this.parents = new Map();
    this.children = new Map();
    this.fedInputs = new Map(); // node id -> names of its inputs fed by a node that runs
    for (const [id, k] of kind) {
      if (k !== "node") continue;
      this.parents.set(id, new Set());
      this.children.set(id, new Set());
      this.fedInputs.set(id, new Set());
    }
    for (const [origin, k] of kind) {
      if (k !== "node") continue;
      // Follow each link through Reroutes and bypassed nodes to the nodes that run.
      const stack = [...(out.get(origin) ?? [])];
      const seen = new Set();
      while (stack.length) {
        const link = stack.pop();
        if (seen.has(link)) continue;
        seen.add(link);
        const targetKind = kind.get(link.target);
        if (targetKind === "node") {
          this.children.get(origin).add(link.target);
          this.parents.get(link.target).add(origin);
          this.fedInputs.get(link.target).add(link.targetInput);
        } else if (targetKind === "through") {
          stack.push(...(out.get(link.target) ?? []));
        }
      }
    }
  }

  has(id) {
    return this.parents.has(id);
  }

  /** These edges and `extra` ones ([from, to] pairs), as a new Adjacency for walks only. */
  with(extra) {
    const copy = Object.create(Adjacency.prototype);
    copy.parents = new Map([...this.parents].map(([id, set]) => [id, new Set(set)]));
    copy.children = new Map([...this.children].map(([id, set]) => [id, new Set(set)]));
    copy.fedInputs = this.fedInputs;
    for (const [from, to] of extra) {
      copy.children.get(from)?.add(to);
      copy.parents.get(to)?.add(from);
    }
    return copy;
  }

  ancestors(start) {
    return walk(start, this.parents);
  }

  descendants(start) {
    return walk(start, this.children);
  }
}

function walk(start, edges) {
  const seen = new Set();
  const stack = [...start];
  while (stack.length) {
    for (const next of edges.get(stack.pop()) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return seen;
}

function portOf(node, adjacency) {
  const uid = typeof node.widgets.unique_id === "string" ? node.widgets.unique_id.trim() : "";
  const fed = adjacency.fedInputs.get(node.id);
  const takesIn = fed.has(VALUE_INPUT) || fed.has(undefined) || fed.has(null);
  const givesOut = adjacency.children.get(node.id).size > 0;
  const mode = takesIn
    ? givesOut
      ? Mode.PASSTHRU
      : Mode.OUTPUT
    : givesOut
      ? Mode.INPUT
      : Mode.UNCONNECTED;
  return {
    id: node.id,
    uid,
    tags: parseList(node.widgets.tags),
    mode,
    scope: null, // the loop id whose body it belongs to, "workflow", or null
    entry: false,
    exit: false,
    problems: [],
  };
}

/** Entries and exits of the ports of one body; fills in each port's role and problems, returns the body's.
 * `flow` is the graph with each loop's ports leading into its loop node: a value that enters a loop nested in the
 * body comes out of that loop node, so a port after the nested loop is downstream of one before it. */
function assignRoles(ports, flow, scope) {
  const problems = [];
  const byUid = new Map();
  for (const port of ports) {
    port.scope = scope;
    if (!port.uid) {
      port.problems.push("empty unique_id");
      continue;
    }
    if (!byUid.has(port.uid)) byUid.set(port.uid, []);
    byUid.get(port.uid).push(port);
  }
  const entries = new Map();
  const exits = new Map();
  for (const [uid, chain] of byUid) {
    const ids = new Set(chain.map((port) => port.id));
    for (const port of chain) {
      const before = [...flow.ancestors([port.id])].some((id) => ids.has(id));
      const after = [...flow.descendants([port.id])].some((id) => ids.has(id));
      port.entry = port.mode !== Mode.OUTPUT && !before;
      port.exit = port.mode !== Mode.INPUT && !after && uid !== ITERATION_UID;
      if (uid === ITERATION_UID && port.mode === Mode.OUTPUT) {
        port.problems.push(`'${ITERATION_UID}' is reserved for the iteration index: an entry only`);
      }
      if (port.entry) {
        if (!entries.has(uid)) entries.set(uid, []);
        entries.get(uid).push(port.id);
      }
    }
    const last = chain.filter((port) => port.exit);
    if (last.length > 1) {
      const problem = `uid '${uid}' has ${last.length} exits (nodes ${last.map((port) => port.id).join(", ")})`;
      for (const port of last) port.problems.push(problem);
      problems.push(problem);
    }
    if (last.length) exits.set(uid, last.map((port) => port.id));
  }
  return { entries, exits, problems };
}

function bodyNodes(entries, exits, adjacency) {
  const entryIds = [...entries.values()].flat();
  const exitIds = [...exits.values()].flat();
  const seed = new Set([...entryIds, ...adjacency.descendants(entryIds), ...exitIds]);
  const lighter = new Set([...adjacency.ancestors(seed)].filter((id) => !seed.has(id)));
  return { seed, lighter };
}

export function analyse(graph) {
  const adjacency = new Adjacency(graph);
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  const ports = new Map();
  for (const node of graph.nodes) {
    if (node.type === PORT && adjacency.has(node.id)) ports.set(node.id, portOf(node, adjacency));
  }
  const linked = [...ports.values()].filter((port) => port.mode !== Mode.UNCONNECTED);
  const loops = new Map();
  for (const node of graph.nodes) {
    if (!LOOP_CLASSES.has(node.type) || !adjacency.has(node.id)) continue;
    const body = typeof node.widgets.body === "string" ? node.widgets.body.trim() : "";
    loops.set(node.id, {
      id: node.id,
      type: node.type,
      body,
      nodes: new Set(),
      lighter: new Set(),
      entries: new Map(),
      exits: new Map(),
      ports: [],
      problems: [],
    });
  }
  const flow = adjacency.with(
    [...loops.values()].flatMap((loop) =>
      linked.filter((port) => loop.body && port.tags.includes(loop.body)).map((port) => [port.id, loop.id]),
    ),
  );
  for (const loop of loops.values()) {
    if (!loop.body) {
      loop.problems.push("the body name is empty: name it and tag the body's ports with it");
      continue;
    }
    loop.ports = linked.filter((port) => port.tags.includes(loop.body) && !port.scope);
    if (!loop.ports.length) {
      loop.problems.push(`no DiscomfortPort is tagged '${loop.body}'`);
      continue;
    }
    const { entries, exits, problems } = assignRoles(loop.ports, flow, loop.id);
    const { seed, lighter } = bodyNodes(entries, exits, adjacency);
    Object.assign(loop, { entries, exits, seed, nodes: new Set([...seed, ...lighter]), lighter });
    loop.problems.push(...problems);
  }
  nestBodies(loops, adjacency);
  for (const loop of loops.values()) checkSettings(loop, byId.get(loop.id));
  // A workflow file is a body of its own: every linked port that no loop's body holds.
  const inBodies = new Set([...loops.values()].flatMap((loop) => [...loop.nodes]));
  const free = linked.filter((port) => !port.scope && !inBodies.has(port.id));
  const { entries, exits, problems } = assignRoles(free, flow, "workflow");
  return { ports, loops, workflow: { entries, exits, ports: free, problems } };
}

/** A loop inside another's body brings its own body along; a loop may not sit in its own body. */
function nestBodies(loops, adjacency) {
  for (const loop of loops.values()) {
    if (!loop.seed) continue;
    if (loop.nodes.has(loop.id)) {
      loop.problems.push(
        loop.seed.has(loop.id)
          ? "it takes a value computed in its own body; values enter and leave a loop through its ports"
          : "its own output feeds its body; values enter and leave a loop through its ports",
      );
    }
    const done = new Set();
    const enclosing = new Set([loop.id]);
    let pending = [...loop.nodes].filter((id) => loops.has(id) && id !== loop.id);
    while (pending.length) {
      const innerId = pending.shift();
      if (done.has(innerId)) continue;
      done.add(innerId);
      const inner = loops.get(innerId);
      if (!inner.seed) continue;
      if (inner.nodes.has(loop.id)) {
        loop.problems.push(`loops ${loop.id} and ${innerId} are each inside the other's body`);
        continue;
      }
      enclosing.add(innerId);
      for (const id of [...inner.nodes, ...adjacency.ancestors(inner.nodes)]) {
        if (!loop.nodes.has(id)) {
          loop.nodes.add(id);
          if (!loop.seed.has(id)) loop.lighter.add(id);
          if (loops.has(id) && !enclosing.has(id)) pending.push(id);
        }
      }
    }
  }
}

/** `stop_when`, `uids` and `accumulate` name uids that an exit of the body must give. */
function checkSettings(loop, node) {
  loop.uids = parseList(node.widgets.uids);
  loop.accumulate = parseList(node.widgets.accumulate);
  loop.stopWhen = typeof node.widgets.stop_when === "string" ? node.widgets.stop_when.trim() : "";
  if (!loop.seed) return;
  const given = (uid) => loop.exits.has(uid);
  for (const uid of loop.uids) {
    if (!given(uid) && !loop.entries.has(uid)) loop.problems.push(`uids: no port of the body has uid '${uid}'`);
    else if (!given(uid)) loop.problems.push(`uids: no exit gives '${uid}'`);
  }
  for (const uid of loop.accumulate) {
    if (!given(uid)) loop.problems.push(`accumulate: no exit gives '${uid}'`);
  }
  if (loop.stopWhen && !given(loop.stopWhen)) loop.problems.push(`stop_when: no exit gives '${loop.stopWhen}'`);
}

/** The exit uids a loop's pickers offer, in the order their exits appear in the graph. */
export function exitUids(loop) {
  return [...(loop?.exits?.keys() ?? [])];
}

/** The analysis as plain JSON, for tests and for comparing with the Python backend. */
export function toPlain(analysis) {
  const sorted = (ids) => [...ids].sort(compareIds);
  const byUid = (map) => Object.fromEntries([...map].map(([uid, ids]) => [uid, sorted(ids)]));
  const ports = {};
  for (const port of analysis.ports.values()) {
    ports[port.id] = {
      uid: port.uid,
      mode: port.mode,
      scope: port.scope,
      role: roleName(port),
      problems: port.problems,
    };
  }
  const loops = {};
  for (const loop of analysis.loops.values()) {
    loops[loop.id] = {
      body: loop.body,
      nodes: sorted(loop.nodes),
      lighter: sorted(loop.lighter),
      entries: byUid(loop.entries),
      exits: byUid(loop.exits),
      problems: loop.problems,
    };
  }
  const { entries, exits } = analysis.workflow;
  return { ports, loops, workflow: { entries: byUid(entries), exits: byUid(exits) } };
}

export function compareIds(a, b) {
  const [x, y] = [String(a), String(b)];
  const numeric = /^\d+$/;
  if (numeric.test(x) && numeric.test(y)) return Number(x) - Number(y);
  return x < y ? -1 : x > y ? 1 : 0;
}
