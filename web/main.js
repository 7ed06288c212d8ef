// Discomfort's frontend extension: the one registration, wiring the modules beside it to the frontend's hooks.
//
// roles.js decides what the backend decides (modes, roles, bodies); state.js keeps one analysis of the graph on
// screen; badges.js, sockets.js, hull.js and counter.js show it; actions.js holds what a user can do.

import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";
import { pickerItems, portItems, selectBody, wrapInLoop } from "./actions.js";
import { Colors, portBadges, redrawSlots, setBadges, warning } from "./badges.js";
import { Counter } from "./counter.js";
import { isLoop, isPort, nodesOf } from "./graph.js";
import { drawHulls, hullRegions, loopsHolding, nodeRect } from "./hull.js";
import { keepSavedOutputNames, remapPrompt, shapeLoopSockets, typePorts } from "./sockets.js";
import { GraphState } from "./state.js";

const EXTENSION = "Discomfort.Loops";
const Setting = Object.freeze({
  badges: "Discomfort.Badges",
  highlight: "Discomfort.BodyHighlight",
  counter: "Discomfort.IterationCounter",
});

const state = new GraphState(() => app.canvas?.graph ?? app.graph);
const counter = new Counter((nodeId) => {
  const node = state.graphOf()?.getNodeById(Number(nodeId)) ?? state.graphOf()?.getNodeById(nodeId);
  if (node) showCounter(node);
});

function enabled(setting) {
  return app.extensionManager?.setting?.get?.(setting) !== false;
}

function nodeById(graph, id) {
  return graph?.getNodeById(Number(id)) ?? graph?.getNodeById(id);
}

// --- what each change of the graph updates ----------------------------------------------------------------------------

function portType(graph) {
  return (loop, uid) => {
    const ids = loop?.exits?.get(uid) ?? loop?.entries?.get(uid) ?? [];
    const port = nodeById(graph, ids[0]);
    const type = port?.outputs?.[0]?.type;
    return type && type !== "*" ? type : null;
  };
}

function shapeSockets(analysis, graph) {
  if (app.configuringGraph) return false;
  let changed = typePorts(graph);
  for (const node of nodesOf(graph).filter(isLoop)) {
    if (shapeLoopSockets(graph, node, analysis.loops.get(String(node.id)), portType(graph))) {
      redrawSlots(node);
      changed = true;
    }
  }
  if (changed) state.invalidate(); // types and sockets moved: roles are read again from the new links
  return changed;
}

function showBadges(analysis, graph) {
  const on = enabled(Setting.badges);
  for (const node of nodesOf(graph)) {
    if (isPort(node)) setBadges(node, "port", on ? portBadges(analysis.ports.get(String(node.id))) : []);
    if (isLoop(node)) {
      const problems = analysis.loops.get(String(node.id))?.problems ?? [];
      setBadges(node, "check", on && problems.length ? [warning(problems)] : []);
      showCounter(node);
    }
  }
}

function showCounter(node) {
  const run = counter.get(node.id);
  if (!run || !enabled(Setting.counter)) {
    setBadges(node, "counter", []);
    return;
  }
  const colour = { running: Colors.running, settled: Colors.finished, done: Colors.finished }[run.status];
  setBadges(node, "counter", [{ text: run.text, bgColor: colour ?? Colors.stopped }]);
}

state.subscribe((analysis, graph) => {
  if (shapeSockets(analysis, graph)) return; // the next round shows the settled graph
  showBadges(analysis, graph);
  graph.setDirtyCanvas?.(true, true);
});

// --- drawing the bodies ------------------------------------------------------------------------------------------------

function drawBackground(ctx) {
  const analysis = enabled(Setting.highlight) ? state.current() : null;
  if (analysis?.loops.size) drawHulls(ctx, hullRegions(analysis, state.graph));
}

function drawHover(ctx) {
  // "in loop ‹name›" above the node under the pointer (the classic canvas tracks it; Nodes 2.0 shows the names on
  // the regions themselves).
  const node = app.canvas?.node_over;
  const analysis = node && enabled(Setting.highlight) ? state.current() : null;
  const loops = analysis ? loopsHolding(analysis, node.id).filter((loop) => String(loop.id) !== String(node.id)) : [];
  if (!loops.length) return;
  const [x, y] = nodeRect(node);
  ctx.save();
  ctx.font = "12px sans-serif";
  const text = loops.map((loop) => `in loop ‹${loop.body}›`).join(", ");
  const width = ctx.measureText(text).width + 12;
  ctx.fillStyle = "rgba(20, 20, 28, 0.85)";
  ctx.fillRect(x, y - 44, width, 20);
  ctx.fillStyle = "#ffffff";
  ctx.textBaseline = "middle";
  ctx.fillText(text, x + 6, y - 34);
  ctx.restore();
}

function chain(object, name, extra) {
  const previous = object[name];
  object[name] = function (...args) {
    const result = previous?.apply(this, args);
    extra.apply(this, args);
    return result;
  };
}

// --- actions -----------------------------------------------------------------------------------------------------------

function selectedNodes() {
  const canvas = app.canvas;
  const items = canvas?.selectedItems ? [...canvas.selectedItems] : Object.values(canvas?.selected_nodes ?? {});
  return items.filter((item) => item && typeof item.id !== "undefined" && item.inputs !== undefined);
}

function ask(message) {
  const dialog = app.extensionManager?.dialog;
  if (dialog?.prompt) return dialog.prompt({ title: "Discomfort", message });
  return Promise.resolve(window.prompt(message));
}

function toast(detail, severity = "warn") {
  const manager = app.extensionManager?.toast;
  if (manager?.add) manager.add({ severity, summary: "Discomfort", detail, life: 5000 });
  else console.warn(`Discomfort: ${detail}`);
}

function wrapSelection() {
  const graph = state.graphOf();
  const result = wrapInLoop(graph, selectedNodes(), (loopNode) => {
    shapeLoopSockets(graph, loopNode, null, () => null);
  });
  if (typeof result === "string") {
    toast(result);
    return null;
  }
  state.invalidate();
  app.canvas.selectItems?.([result]);
  return result;
}

function loopMenu(node) {
  const graph = state.graphOf();
  const loop = state.current()?.loops.get(String(node.id));
  const after = () => state.invalidate();
  return [
    { content: "Select loop body", callback: () => selectBody(app.canvas, loop), disabled: !loop?.nodes.size },
    ...portItems(graph, node, loop, ask, after),
    ...pickerItems(node, loop, after),
  ];
}

function selectedLoop() {
  const nodes = selectedNodes();
  return nodes.length === 1 && isLoop(nodes[0]) ? nodes[0] : null;
}

function openLoopMenu() {
  const node = selectedLoop();
  if (!node) return;
  const canvas = app.canvas;
  const box = canvas.canvas.getBoundingClientRect();
  const [x, y] = canvas.ds.convertOffsetToCanvas(node.pos);
  const event = new MouseEvent("contextmenu", { clientX: box.left + x, clientY: box.top + y });
  new window.LiteGraph.ContextMenu(loopMenu(node), { event, title: node.title });
}

// --- the extension -----------------------------------------------------------------------------------------------------

app.registerExtension({
  name: EXTENSION,

  settings: [
    {
      id: Setting.badges,
      category: ["Discomfort", "Loops", "Badges"],
      name: "Show port modes, uids and roles, and loop checks, as badges",
      type: "boolean",
      defaultValue: true,
      onChange: () => state.invalidate(),
    },
    {
      id: Setting.highlight,
      category: ["Discomfort", "Loops", "Body highlight"],
      name: "Tint each loop's body on the canvas",
      type: "boolean",
      defaultValue: true,
      onChange: () => state.invalidate(),
    },
    {
      id: Setting.counter,
      category: ["Discomfort", "Loops", "Iteration counter"],
      name: "Show the iteration counter on loop nodes",
      type: "boolean",
      defaultValue: true,
      onChange: () => state.invalidate(),
    },
  ],

  commands: [
    { id: "Discomfort.WrapInLoop", label: "Wrap selection in a Discomfort loop", icon: "pi pi-replay",
      function: wrapSelection },
    { id: "Discomfort.SelectLoopBody", label: "Select the loop's body", icon: "pi pi-clone",
      function: () => {
        const node = selectedLoop();
        if (node) selectBody(app.canvas, state.current()?.loops.get(String(node.id)));
      } },
    { id: "Discomfort.LoopMenu", label: "Loop: ports and uids", icon: "pi pi-list", function: openLoopMenu },
  ],

  keybindings: [{ combo: { key: "l", alt: true }, commandId: "Discomfort.WrapInLoop" }],

  beforeRegisterNodeDef(nodeType, nodeData) {
    const name = nodeData?.name;
    if (name !== "DiscomfortPort" && !isLoop({ comfyClass: name })) return;
    chain(nodeType.prototype, "onConnectionsChange", () => state.invalidate());
    if (name === "DiscomfortPort") return;
    const configure = nodeType.prototype.configure;
    nodeType.prototype.configure = function (data) {
      const saved = (data?.outputs ?? []).map((output) => output?.name);
      const result = configure.call(this, data);
      keepSavedOutputNames(this, saved);
      return result;
    };
  },

  nodeCreated(node) {
    if (isLoop(node)) {
      for (const widget of node.widgets ?? []) chain(widget, "callback", () => state.invalidate());
    }
  },

  afterConfigureGraph() {
    state.invalidate();
  },

  setup() {
    const canvas = app.canvas;
    chain(canvas, "onDrawBackground", drawBackground);
    chain(canvas, "onDrawForeground", drawHover);
    api.addEventListener("graphChanged", () => state.invalidate());
    api.addEventListener("progress_text", ({ detail }) => counter.progressText(String(detail?.nodeId), detail?.text));
    api.addEventListener("execution_success", () => counter.finish("success"));
    api.addEventListener("execution_interrupted", () => counter.finish("cancelled"));
    api.addEventListener("execution_error", () => counter.finish("failed"));
    // Links out of a loop node name its outputs; the backend reads them by position (see sockets.js).
    const graphToPrompt = app.graphToPrompt;
    app.graphToPrompt = async function (graph = app.graph, ...rest) {
      const result = await graphToPrompt.call(this, graph, ...rest);
      remapPrompt(result?.output, graph ?? app.graph);
      return result;
    };
    state.invalidate();
  },

  getNodeMenuItems(node) {
    if (isLoop(node)) return [null, ...loopMenu(node).map((item) => ({ ...item, content: `Discomfort: ${item.content}` }))];
    if (selectedNodes().length > 0 && !isLoop(node)) {
      return [null, { content: "Discomfort: wrap selection in a loop", callback: wrapSelection }];
    }
    return [];
  },

  getCanvasMenuItems() {
    if (!selectedNodes().length) return [];
    return [null, { content: "Discomfort: wrap selection in a loop", callback: wrapSelection }];
  },

  getSelectionToolboxCommands(item) {
    if (isLoop(item)) return ["Discomfort.SelectLoopBody", "Discomfort.LoopMenu"];
    return item?.inputs !== undefined ? ["Discomfort.WrapInLoop"] : [];
  },
});

