// Each loop's body drawn behind its nodes in the loop's colour: one tinted region around the nodes that run every
// iteration, a fainter one around those that run once (loaders feeding the body), and the loop's name on it.
// Drawn in the canvas background pass (after groups, before links and nodes), so it never hides the selection
// outline and works under both renderers.

const PALETTE = ["#7c5cff", "#00a389", "#e08a00", "#d04f8a", "#2f8fd8", "#8aa000"];
const MARGIN = 14;
const RADIUS = 12;

export function loopColour(loopNode, index) {
  const own = loopNode?.color;
  return typeof own === "string" && /^#[0-9a-f]{6}$/i.test(own) ? own : PALETTE[index % PALETTE.length];
}

/** The rectangle a node covers on the canvas, title bar included: [x, y, width, height]. */
export function nodeRect(node) {
  const title = node.collapsed ? 0 : (window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30);
  const [x, y] = node.pos;
  const [w, h] = node.collapsed ? [node._collapsed_width ?? 80, 0] : node.size;
  return [x, y - title, w, h + title];
}

/** The regions to draw: per loop, its colour and the rectangles of its nodes (each grown by MARGIN). */
export function hullRegions(analysis, graph) {
  const regions = [];
  let index = 0;
  for (const loop of analysis.loops.values()) {
    const loopNode = graph.getNodeById(Number(loop.id)) ?? graph.getNodeById(loop.id);
    const colour = loopColour(loopNode, index++);
    if (!loop.nodes.size) continue;
    const rects = (ids) =>
      [...ids]
        .map((id) => graph.getNodeById(Number(id)) ?? graph.getNodeById(id))
        .filter(Boolean)
        .map((node) => grow(nodeRect(node), MARGIN));
    const lighterIds = loop.lighter;
    const runIds = [...loop.nodes].filter((id) => !lighterIds.has(id));
    regions.push({ loopId: loop.id, body: loop.body, colour, run: rects(runIds), once: rects(lighterIds) });
  }
  return regions;
}

function grow([x, y, w, h], by) {
  return [x - by, y - by, w + 2 * by, h + 2 * by];
}

export function drawHulls(ctx, regions) {
  ctx.save();
  for (const region of regions) {
    fillUnion(ctx, region.once, region.colour, 0.1);
    fillUnion(ctx, region.run, region.colour, 0.24);
    const all = [...region.run, ...region.once];
    if (!all.length) continue;
    const left = Math.min(...all.map((r) => r[0]));
    const top = Math.min(...all.map((r) => r[1]));
    ctx.globalAlpha = 0.9;
    ctx.fillStyle = region.colour;
    ctx.font = "bold 13px sans-serif";
    ctx.textBaseline = "bottom";
    ctx.fillText(`↻ loop ‹${region.body}›`, left + 4, top - 3);
  }
  ctx.restore();
}

function fillUnion(ctx, rects, colour, alpha) {
  if (!rects.length) return;
  // One path, filled once: overlapping rectangles do not darken each other.
  ctx.beginPath();
  for (const [x, y, w, h] of rects) {
    if (ctx.roundRect) ctx.roundRect(x, y, w, h, RADIUS);
    else ctx.rect(x, y, w, h);
  }
  ctx.globalAlpha = alpha;
  ctx.fillStyle = colour;
  ctx.fill("nonzero");
  ctx.globalAlpha = Math.min(1, alpha * 2.5);
  ctx.strokeStyle = colour;
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 1.5;
  ctx.stroke();
  ctx.setLineDash([]);
}

/** The loops whose body holds a node (for "in loop ‹name›" on hover). */
export function loopsHolding(analysis, nodeId) {
  return [...analysis.loops.values()].filter((loop) => loop.nodes.has(String(nodeId)));
}
