// Badges on nodes, through `node.badges` and LGraphBadge, so both renderers draw them: the classic canvas evaluates
// a node's badges at every draw; Nodes 2.0 (the Vue renderer) only when told the node changed.

import { Mode, roleName } from "./roles.js";

const OURS = Symbol("discomfort.badge");
// Badge groups in the order they stand on a node; each module owns one.
const ORDER = ["port", "check", "counter"];

export const Colors = Object.freeze({
  fg: "#ffffff",
  [Mode.INPUT]: "#2f7d4f",
  [Mode.OUTPUT]: "#a8552a",
  [Mode.PASSTHRU]: "#2f5f9e",
  [Mode.UNCONNECTED]: "#555b61",
  warning: "#b3261e",
  running: "#6a4fa3",
  finished: "#3d5a40",
  stopped: "#8a6d1f",
});

/** Sets the badges a module shows on a node (specs: [{text, bgColor, fgColor?}]); draws only what changed. */
export function setBadges(node, group, specs) {
  const groups = (node[OURS] ??= {});
  const before = JSON.stringify(groups);
  if (specs.length) groups[group] = specs;
  else delete groups[group];
  if (JSON.stringify(groups) === before) return;
  const ours = ORDER.flatMap((name) => groups[name] ?? []).map(badgeOf);
  const badges = node.badges ?? (node.badges = []);
  // In place: the Vue renderer of frontend 1.32.9 holds on to this very array.
  const kept = badges.filter((badge) => !badge[OURS]);
  badges.splice(0, badges.length, ...kept, ...ours);
  redraw(node);
}

function badgeOf(spec) {
  const LGraphBadge = window.LGraphBadge;
  const badge = () => new LGraphBadge({ fgColor: Colors.fg, fontSize: 11, ...spec });
  badge[OURS] = true;
  return badge;
}

/** Tells both renderers a node's badges changed. */
export function redraw(node) {
  const graph = node.graph;
  graph?.setDirtyCanvas?.(true, false);
  if (!graph?.trigger) return;
  // Newer frontends re-read a node's badges on this event (their own price badges use it).
  graph.trigger("node:property:changed", {
    nodeId: node.id,
    property: "badges",
    oldValue: node.badges,
    newValue: node.badges,
  });
  // Frontend 1.32.9's Vue renderer re-reads a node (badges and slots) on this one, and ignores the first.
  graph.trigger("node:slot-errors:changed", { nodeId: node.id });
}

/** Tells both renderers a node's sockets changed (added, removed, relabelled). */
export function redrawSlots(node) {
  redraw(node);
  // Newer frontends re-read a node's slots on this event.
  node.graph?.trigger?.("node:slot-label:changed", { nodeId: node.id });
}

export function portBadges(port) {
  if (!port) return [];
  const parts = [port.mode, port.uid || "no uid"];
  const role = roleName(port);
  if (role) parts.push(role);
  const specs = [{ text: parts.join(" · "), bgColor: port.uid ? Colors[port.mode] : Colors.warning }];
  if (port.problems.length) specs.push(warning(port.problems));
  return specs;
}

export function warning(problems) {
  const more = problems.length > 1 ? ` (+${problems.length - 1})` : "";
  return { text: `⚠ ${problems[0]}${more}`, bgColor: Colors.warning };
}
