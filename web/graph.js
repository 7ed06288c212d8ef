// The live LiteGraph graph as the plain graph roles.js reads, and the few lookups the other modules share.

import { LOOP_CLASSES, PORT } from "./roles.js";

export function classOf(node) {
  // In nodeCreated `node.type` is not set yet (frontend 1.32.9); comfyClass is.
  return node?.comfyClass ?? node?.constructor?.comfyClass ?? node?.type;
}

export const isPort = (node) => classOf(node) === PORT;
export const isLoop = (node) => LOOP_CLASSES.has(classOf(node));

export function widget(node, name) {
  return node?.widgets?.find((w) => w.name === name);
}

export function widgetValue(node, name) {
  return widget(node, name)?.value;
}

/** Every link of a graph, whatever container this frontend keeps them in (a Map in 1.x, an object before). */
export function linksOf(graph) {
  const links = graph?.links;
  if (!links) return [];
  return links instanceof Map ? [...links.values()] : Object.values(links);
}

export function linkById(graph, id) {
  const links = graph?.links;
  if (id == null || !links) return undefined;
  return links instanceof Map ? links.get(id) : links[id];
}

export function nodesOf(graph) {
  return graph?.nodes ?? graph?._nodes ?? [];
}

export function plainGraph(graph) {
  const nodes = nodesOf(graph).map((node) => ({
    id: String(node.id),
    type: classOf(node),
    mode: node.mode ?? 0,
    widgets: Object.fromEntries((node.widgets ?? []).map((w) => [w.name, w.value])),
  }));
  const byId = new Map(nodesOf(graph).map((node) => [String(node.id), node]));
  const links = [];
  for (const link of linksOf(graph)) {
    if (!link) continue;
    const target = byId.get(String(link.target_id));
    links.push({
      origin: String(link.origin_id),
      target: String(link.target_id),
      targetInput: target?.inputs?.[link.target_slot]?.name,
    });
  }
  return { nodes, links };
}
