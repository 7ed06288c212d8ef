// Sockets: a port's sockets take the type of what they are linked to (as Reroute does), and a loop node shows only
// the value sockets its `uids` and `accumulate` use, labelled with the uid.
//
// A loop node's outputs are positional in ComfyUI's API prompt (a link is [node id, output index]) and the backend
// keeps them in one order (value_1…, accumulated_1…, iterations). So the sockets shown keep their backend names, and
// the link indices are mapped back by name wherever a prompt is built: `remapPrompt` for the prompt the frontend
// queues or exports, workflow/convert.py for saved workflow files.

import { isLoop, isPort, linkById, nodesOf } from "./graph.js";
import { parseList } from "./roles.js";

const VALUE = /^value_(\d+)$/;
const ACCUMULATED = /^accumulated_(\d+)$/;
// Accumulated values of these types are joined along the batch; anything else becomes a list.
const BATCHED = new Set(["IMAGE", "MASK", "LATENT"]);
const ANY = "*";

function valid(a, b) {
  return window.LiteGraph?.isValidConnection ? window.LiteGraph.isValidConnection(a, b) : true;
}

// --- typed ports -------------------------------------------------------------------------------------------------

/** What a port takes from upstream (null when nothing feeds it) and what its consumers need (null: anything). */
function portSides(graph, node) {
  const link = linkById(graph, node.inputs?.[0]?.link);
  const origin = link && graph.getNodeById(link.origin_id);
  const upstream = origin ? (origin.outputs?.[link.origin_slot]?.type ?? ANY) : null;
  let downstream = null;
  for (const id of node.outputs?.[0]?.links ?? []) {
    const out = linkById(graph, id);
    const target = out && graph.getNodeById(out.target_id);
    const type = target?.inputs?.[out.target_slot]?.type;
    if (type && type !== ANY) {
      downstream = type;
      break;
    }
  }
  return { upstream: upstream && upstream !== ANY ? upstream : null, downstream };
}

/** Gives every port the type it is linked to; returns whether anything changed. Chains of ports settle in a few
 * passes: each pass moves a type one port further. */
export function typePorts(graph) {
  const ports = nodesOf(graph).filter(isPort);
  let changedAny = false;
  for (let pass = 0; pass <= ports.length; pass++) {
    let changed = false;
    for (const node of ports) changed = typePort(graph, node) || changed;
    changedAny ||= changed;
    if (!changed) break;
  }
  return changedAny;
}

function typePort(graph, node) {
  const input = node.inputs?.[0];
  const output = node.outputs?.[0];
  if (!input || !output) return false;
  const { upstream, downstream } = portSides(graph, node);
  // The input accepts what the consumers need, like Comfy.MatchType: re-linking it with the same type works.
  const inType = downstream ?? ANY;
  const outType = upstream ?? downstream ?? ANY;
  let changed = input.type !== inType || output.type !== outType;
  input.type = inType;
  output.type = outType;
  const fed = linkById(graph, input.link);
  if (fed && upstream && fed.type !== upstream) {
    fed.type = upstream; // the link's colour: LiteGraph typed it after the wildcard socket it entered
    changed = true;
  }
  for (const id of [...(output.links ?? [])]) {
    const link = linkById(graph, id);
    if (!link) continue;
    const target = graph.getNodeById(link.target_id);
    const wanted = target?.inputs?.[link.target_slot]?.type ?? ANY;
    if (!valid(outType, wanted)) {
      // What now arrives no longer fits this consumer: unlink it, as Reroute does.
      target.disconnectInput(link.target_slot);
      changed = true;
    } else if (link.type !== outType) {
      link.type = outType;
      changed = true;
    }
  }
  return changed;
}

// --- loop sockets --------------------------------------------------------------------------------------------------

/** The backend's output names of a loop node, in their API order. */
export function backendOutputs(node) {
  const names = node.constructor?.nodeData?.output_name;
  return Array.isArray(names) ? names : [];
}

/** The optional `value_k` inputs the backend defines, in order. */
function backendValueInputs(node) {
  const data = node.constructor?.nodeData;
  const names = [...Object.keys(data?.input?.required ?? {}), ...Object.keys(data?.input?.optional ?? {})];
  return names.filter((name) => VALUE.test(name));
}

function inputOrder(node) {
  const data = node.constructor?.nodeData;
  return [...Object.keys(data?.input?.required ?? {}), ...Object.keys(data?.input?.optional ?? {})];
}

/** The label a loop socket shows, or null for a socket no setting uses. */
function socketLabel(name, uids, accumulate) {
  let match = VALUE.exec(name);
  if (match) return uids[Number(match[1]) - 1] ?? null;
  match = ACCUMULATED.exec(name);
  if (match) {
    const uid = accumulate[Number(match[1]) - 1];
    return uid === undefined ? null : `${uid} (all)`;
  }
  return name;
}

/** Shows a loop node's sockets in use only, named by uid and typed like the ports that give them. Linked sockets
 * are never removed: one the settings no longer use is labelled so. Returns whether anything changed. */
export function shapeLoopSockets(graph, node, loop, portTypes) {
  const names = backendOutputs(node);
  if (!names.some((name) => VALUE.test(name))) return false; // a loop without value sockets (the folder loop)
  const uids = parseList(widgetOf(node, "uids"));
  const accumulate = parseList(widgetOf(node, "accumulate"));
  const typeOf = (uid) => portTypes(loop, uid);
  let changed = false;

  // Outputs: drop the unused unlinked ones, add the missing ones, keep the backend's order.
  for (let slot = node.outputs.length - 1; slot >= 0; slot--) {
    const output = node.outputs[slot];
    if (socketLabel(output.name, uids, accumulate) === null && !output.links?.length) {
      node.removeOutput(slot);
      changed = true;
    }
  }
  for (const name of names) {
    if (socketLabel(name, uids, accumulate) !== null && !node.outputs.some((output) => output.name === name)) {
      node.addOutput(name, ANY);
      changed = true;
    }
  }
  changed = sortSlots(graph, node, "outputs", names) || changed;
  node.outputs.forEach((slot, index) => {
    const label = socketLabel(slot.name, uids, accumulate) ?? `${slot.name} (unused)`;
    const type = outputType(node, slot.name, uids, accumulate, typeOf);
    if (slot.label !== label || slot.localized_name !== label || slot.type !== type) {
      node.outputs[index] = relabelled(node, slot, label, type);
      changed = true;
    }
  });
  node.outputs.forEach((output, index) => {
    output.slot_index = index; // the workflow schema wants a number here, and LiteGraph's own slots carry one
  });
  for (const output of node.outputs) {
    for (const id of output.links ?? []) {
      const link = linkById(graph, id);
      if (link && link.type !== output.type) link.type = output.type; // the link's colour
    }
  }

  // Inputs: one value socket per uid of `uids`; inputs are bound by name, so order only matters on screen.
  const valueInputs = backendValueInputs(node);
  for (let slot = node.inputs.length - 1; slot >= 0; slot--) {
    const input = node.inputs[slot];
    if (valueInputs.includes(input.name) && socketLabel(input.name, uids, []) === null && input.link == null) {
      node.removeInput(slot);
      changed = true;
    }
  }
  for (const name of valueInputs) {
    if (socketLabel(name, uids, []) !== null && !node.inputs.some((input) => input.name === name)) {
      node.addInput(name, ANY);
      changed = true;
    }
  }
  changed = sortSlots(graph, node, "inputs", inputOrder(node)) || changed;
  node.inputs.forEach((slot, index) => {
    if (!valueInputs.includes(slot.name)) return;
    const uid = socketLabel(slot.name, uids, []);
    const label = uid ?? `${slot.name} (unused)`;
    const type = uid === null ? ANY : (typeOf(uid) ?? ANY);
    if (slot.label !== label || slot.localized_name !== label || slot.type !== type) {
      node.inputs[index] = relabelled(node, slot, label, type);
      changed = true;
    }
  });
  if (changed) node.setSize?.([node.size[0], node.computeSize()[1]]);
  return changed;
}

/** The slot with a new label and type. The classic canvas shows `label`, Nodes 2.0 of frontend 1.32.9
 * `localized_name`, and only re-renders a slot that is a new object: so a copy, made the way LiteGraph makes its
 * slots when it configures a node. */
function relabelled(node, slot, label, type) {
  slot.label = label;
  slot.localized_name = label;
  slot.type = type;
  try {
    return slot.constructor && slot.constructor !== Object ? new slot.constructor(slot, node) : { ...slot };
  } catch {
    return slot; // a frontend whose slots are made differently: the labels are set, shown at its next redraw
  }
}

function outputType(node, name, uids, accumulate, typeOf) {
  let match = VALUE.exec(name);
  if (match) return typeOf(uids[Number(match[1]) - 1]) ?? ANY;
  match = ACCUMULATED.exec(name);
  if (match) {
    const type = typeOf(accumulate[Number(match[1]) - 1]);
    return BATCHED.has(type) ? type : ANY;
  }
  // `iterations`, and the workflow loop's `path`: the type the backend gives them.
  const data = node.constructor?.nodeData;
  const index = backendOutputs(node).indexOf(name);
  return (index >= 0 ? data?.output?.[index] : undefined) ?? ANY;
}

function widgetOf(node, name) {
  return node.widgets?.find((w) => w.name === name)?.value;
}

/** Puts a node's slots in the order `names` gives (others after, as they were) and re-points their links. */
function sortSlots(graph, node, side, names) {
  const slots = node[side];
  const rank = (slot) => {
    const index = names.indexOf(slot.name);
    return index === -1 ? names.length : index;
  };
  const sorted = slots
    .map((slot, index) => ({ slot, index }))
    .sort((a, b) => rank(a.slot) - rank(b.slot) || a.index - b.index)
    .map(({ slot }) => slot);
  if (sorted.every((slot, index) => slot === slots[index])) return false;
  slots.splice(0, slots.length, ...sorted);
  slots.forEach((slot, index) => {
    const ids = side === "outputs" ? (slot.links ?? []) : slot.link == null ? [] : [slot.link];
    for (const id of ids) {
      const link = linkById(graph, id);
      if (!link) continue;
      if (side === "outputs") link.origin_slot = index;
      else link.target_slot = index;
    }
  });
  return true;
}

/** After a loop node is configured from a saved workflow: frontends restore each output's name from the node
 * definition *by position*, which loses what a shaped node saved. Give back the saved names when they are the
 * backend's (older files list every output, unnamed, in the backend's order: nothing to do for them). */
export function keepSavedOutputNames(node, savedNames) {
  const names = backendOutputs(node);
  if (!savedNames.length || !savedNames.every((name) => names.includes(name))) return;
  savedNames.forEach((name, slot) => {
    if (node.outputs[slot]) node.outputs[slot].name = name;
  });
  // What the frontend padded from the definition beyond the saved outputs carries no links.
  for (let slot = node.outputs.length - 1; slot >= savedNames.length; slot--) {
    if (!node.outputs[slot].links?.length) node.outputs.splice(slot, 1);
  }
}

// --- the prompt ------------------------------------------------------------------------------------------------------

/** Maps links out of shaped loop nodes back to the backend's output positions, in an API prompt built from `graph`.
 * Node ids of nodes inside subgraphs are paths ("5:3"). */
export function remapPrompt(prompt, graph) {
  for (const entry of Object.values(prompt ?? {})) {
    for (const [name, value] of Object.entries(entry?.inputs ?? {})) {
      if (!Array.isArray(value) || value.length !== 2 || typeof value[1] !== "number") continue;
      const origin = nodeAt(graph, String(value[0]));
      if (!origin || !isLoop(origin)) continue;
      const slotName = origin.outputs?.[value[1]]?.name;
      const index = backendOutputs(origin).indexOf(slotName);
      if (index !== -1 && index !== value[1]) entry.inputs[name] = [value[0], index];
    }
  }
  return prompt;
}

function nodeAt(graph, path) {
  let node = null;
  let current = graph;
  for (const id of path.split(":")) {
    node = current?.getNodeById?.(Number.isNaN(Number(id)) ? id : Number(id)) ?? current?.getNodeById?.(id);
    current = node?.subgraph;
  }
  return node;
}

