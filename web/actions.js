// What a user does with loops: select a loop's body, add an entry or exit port for a uid, pick the uids a loop's
// settings name, and wrap a selection in a loop (entry ports on incoming links, exit ports on outgoing links, pairs
// of the same type carried, a loop node wired to the old consumers).

import { isLoop, isPort, linksOf, nodesOf, widget } from "./graph.js";
import { exitUids, parseList } from "./roles.js";

const PORT = "DiscomfortPort";
const LOOP = "DiscomfortLoop";
const GAP = 60;

/** Sets a widget's value the way a user's edit does, so both renderers and the change tracker see it. */
export function setWidget(node, name, value) {
  const target = widget(node, name);
  if (!target) return;
  target.value = value;
  target.callback?.(value, window.app?.canvas, node);
}

export function selectBody(canvas, loop) {
  const graph = canvas.graph;
  const nodes = [...(loop?.nodes ?? [])].map((id) => graph.getNodeById(Number(id)) ?? graph.getNodeById(id));
  canvas.selectItems?.(nodes.filter(Boolean)) ?? canvas.selectNodes?.(nodes.filter(Boolean));
  canvas.setDirty(true, true);
}

function addNode(graph, type, pos) {
  const node = window.LiteGraph.createNode(type);
  node.pos = [Math.round(pos[0]), Math.round(pos[1])];
  graph.add(node);
  return node;
}

export function addPort(graph, pos, uid, tags) {
  const port = addNode(graph, PORT, pos);
  setWidget(port, "unique_id", uid);
  setWidget(port, "tags", tags);
  port.title = uid;
  return port;
}

/** An entry (left of the loop node) or exit (right of it) port for `uid`, tagged with the loop's body. */
export function addLoopPort(graph, loopNode, body, uid, side) {
  const [x, y] = loopNode.pos;
  const pos = side === "entry" ? [x - 280, y] : [x + loopNode.size[0] + GAP, y];
  return addPort(graph, pos, uid, body);
}

function uniqueName(base, taken) {
  let name = base;
  for (let k = 2; taken.has(name); k++) name = `${base}_${k}`;
  taken.add(name);
  return name;
}

function uidFor(type, fallback, taken) {
  const base = type && type !== "*" ? String(type).split(",")[0].toLowerCase() : String(fallback || "value");
  return uniqueName(base.replace(/[^a-z0-9_]+/gi, "_") || "value", taken);
}

function bounds(nodes) {
  const xs = nodes.flatMap((n) => [n.pos[0], n.pos[0] + n.size[0]]);
  const ys = nodes.flatMap((n) => [n.pos[1], n.pos[1] + n.size[1]]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

/** Links crossing the selection's border, grouped by the output they leave (one port per output). */
function crossings(graph, selected) {
  const incoming = new Map();
  const outgoing = new Map();
  for (const link of linksOf(graph)) {
    if (!link) continue;
    const inside = [selected.has(link.origin_id), selected.has(link.target_id)];
    const group = inside[1] && !inside[0] ? incoming : inside[0] && !inside[1] ? outgoing : null;
    if (!group) continue;
    const key = `${link.origin_id}:${link.origin_slot}`;
    const origin = graph.getNodeById(link.origin_id);
    const target = graph.getNodeById(link.target_id);
    const output = origin?.outputs?.[link.origin_slot];
    const type = output?.type && output.type !== "*" ? output.type : link.type;
    if (!group.has(key)) group.set(key, { origin, slot: link.origin_slot, type, targets: [], name: output?.name });
    group.get(key).targets.push({ node: target, slot: link.target_slot, name: target?.inputs?.[link.target_slot]?.name });
  }
  return { incoming: [...incoming.values()], outgoing: [...outgoing.values()] };
}

/** Wraps the selected nodes in a loop; returns the loop node, or a sentence saying why not. */
export function wrapInLoop(graph, selectedNodes, shapeSockets) {
  const nodes = selectedNodes.filter((node) => node && !isLoop(node));
  if (!nodes.length) return "select the nodes to run in a loop first";
  const selected = new Set(nodes.map((node) => node.id));
  const { incoming, outgoing } = crossings(graph, selected);
  if (!outgoing.length) return "nothing leaves the selection: link what it makes to a node outside it first";
  const ports = nodesOf(graph).filter(isPort);
  const takenUids = new Set(ports.map((port) => widget(port, "unique_id")?.value).filter(Boolean));
  const takenBodies = new Set(nodesOf(graph).filter(isLoop).map((loop) => widget(loop, "body")?.value));
  const body = uniqueName("loop", takenBodies);
  // Same-type pairs are carried: what leaves in one iteration enters the next.
  const pairs = new Map();
  const free = [...incoming];
  for (const out of outgoing) {
    const match = free.findIndex((entry) => entry.type === out.type && out.type && out.type !== "*");
    if (match !== -1) pairs.set(out, free.splice(match, 1)[0]);
  }
  const [left, , right, bottom] = bounds(nodes);
  const uidOf = new Map();
  outgoing.forEach((out) => uidOf.set(out, uidFor(out.type, out.name, takenUids)));
  for (const [out, entry] of pairs) uidOf.set(entry, uidOf.get(out));
  free.forEach((entry) => uidOf.set(entry, uidFor(entry.type, entry.targets[0]?.name, takenUids)));

  // Ports in a row under the selection (entries left, exits right), the loop node under them: the selection and
  // its neighbours stay where the user put them.
  const row = bottom + GAP;
  let x = left;
  const place = (uid) => {
    const port = addPort(graph, [x, row], uid, body);
    x += port.size[0] + GAP / 2;
    return port;
  };
  for (const entry of incoming) {
    const port = place(uidOf.get(entry));
    entry.origin.connect(entry.slot, port, 0);
    for (const target of entry.targets) port.connect(0, target.node, target.slot);
  }
  x = Math.max(x, right - 220);
  for (const out of outgoing) out.origin.connect(out.slot, place(uidOf.get(out)), 0);
  const loopNode = addNode(graph, LOOP, [left, row + 140]);
  setWidget(loopNode, "body", body);
  setWidget(loopNode, "uids", outgoing.map((out) => uidOf.get(out)).join(", "));
  shapeSockets(loopNode);
  outgoing.forEach((out, index) => {
    const slot = loopNode.outputs.findIndex((output) => output.name === `value_${index + 1}`);
    for (const target of out.targets) loopNode.connect(slot, target.node, target.slot);
  });
  graph.setDirtyCanvas?.(true, true);
  return loopNode;
}

// --- pickers -------------------------------------------------------------------------------------------------------

/** Menu entries that set `stop_when`, `uids` and `accumulate` from the exit uids of a loop's body. */
export function pickerItems(loopNode, loop, afterChange) {
  const uids = exitUids(loop);
  const none = [{ content: "(no exit in the body yet)", disabled: true }];
  const toggle = (name) => (uid) => {
    const chosen = parseList(widget(loopNode, name)?.value);
    const next = chosen.includes(uid) ? chosen.filter((item) => item !== uid) : [...chosen, uid];
    setWidget(loopNode, name, next.join(", "));
    afterChange();
  };
  const list = (name) => {
    const chosen = parseList(widget(loopNode, name)?.value);
    if (!uids.length) return none;
    return uids.map((uid) => ({ content: `${chosen.includes(uid) ? "☑" : "☐"} ${uid}`, callback: () => toggle(name)(uid) }));
  };
  const stopWhen = String(widget(loopNode, "stop_when")?.value ?? "").trim();
  const stopOptions = uids.length
    ? [
        { content: `${stopWhen ? "○" : "●"} (never: run every iteration)`, callback: () => pick("") },
        ...uids.map((uid) => ({ content: `${uid === stopWhen ? "●" : "○"} ${uid}`, callback: () => pick(uid) })),
      ]
    : none;
  function pick(uid) {
    setWidget(loopNode, "stop_when", uid);
    afterChange();
  }
  const items = [];
  if (widget(loopNode, "uids")) items.push({ content: "Values (uids)", submenu: { options: list("uids") } });
  if (widget(loopNode, "accumulate")) {
    items.push({ content: "Accumulate", submenu: { options: list("accumulate") } });
  }
  if (widget(loopNode, "stop_when")) items.push({ content: "Stop when", submenu: { options: stopOptions } });
  return items;
}

/** Menu entries adding an entry or exit port: for uids the settings name that lack one, and for a new uid. */
export function portItems(graph, loopNode, loop, ask, afterChange) {
  const body = loop?.body;
  if (!body) return [];
  const named = [
    ...parseList(widget(loopNode, "uids")?.value),
    ...parseList(widget(loopNode, "accumulate")?.value),
    ...parseList(widget(loopNode, "stop_when")?.value),
  ];
  const add = (uid, side) => {
    addLoopPort(graph, loopNode, body, uid, side);
    afterChange();
  };
  const options = (side) => {
    const has = side === "entry" ? loop.entries : loop.exits;
    const missing = [...new Set(named)].filter((uid) => !has?.has(uid));
    return [
      ...missing.map((uid) => ({ content: `${side} port for '${uid}'`, callback: () => add(uid, side) })),
      {
        content: `${side} port for a new uid…`,
        callback: async () => {
          const uid = (await ask(`The uid of the new ${side} port (tagged '${body}')`))?.trim();
          if (uid) add(uid, side);
        },
      },
    ];
  };
  return [
    { content: "Add entry port", submenu: { options: options("entry") } },
    { content: "Add exit port", submenu: { options: options("exit") } },
  ];
}

