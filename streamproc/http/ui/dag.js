// A workflow's DAG as SVG: layered left to right by longest path from its roots (a task sits
// one layer right of its deepest need), one node per task coloured by its state, one edge
// per need.  Tasks added at run time are drawn like the others (a spawned task needs its
// spawner); superseded ones, and their edges, faded.

import { KNOWN_STATES, svg } from "./dom.js";

const NODE_W = 160;
const NODE_H = 42;
const GAP_X = 64;
const GAP_Y = 16;
const PAD = 12;
const MAX_LABEL = 20;

/** Each task's layer: 0 for a root, else one more than its deepest need. */
export function layerOf(tasks) {
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const layers = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (layers.has(id)) return layers.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot be submitted; never loop on one
    visiting.add(id);
    const needs = (byId.get(id).needs || []).filter((need) => byId.has(need));
    const layer = needs.length ? 1 + Math.max(...needs.map(visit)) : 0;
    visiting.delete(id);
    layers.set(id, layer);
    return layer;
  };
  for (const task of tasks) visit(task.id);
  return layers;
}

/** Node positions: columns by layer; within one, ordered by the mean row of the needs. */
export function place(tasks) {
  const layers = layerOf(tasks);
  const columns = [];
  for (const task of tasks) (columns[layers.get(task.id)] ??= []).push(task);
  const row = new Map();
  for (const column of columns) {
    if (!column) continue;
    const weight = (task) => {
      const rows = (task.needs || []).filter((n) => row.has(n)).map((n) => row.get(n));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
    };
    column.sort((a, b) => weight(a) - weight(b)); // stable: spec order breaks ties
    column.forEach((task, index) => row.set(task.id, index));
  }
  const at = new Map();
  for (const task of tasks) {
    at.set(task.id, {
      x: PAD + layers.get(task.id) * (NODE_W + GAP_X),
      y: PAD + row.get(task.id) * (NODE_H + GAP_Y),
    });
  }
  const height = Math.max(...columns.map((c) => (c ? c.length : 0)));
  return {
    at,
    width: 2 * PAD + columns.length * NODE_W + (columns.length - 1) * GAP_X,
    height: 2 * PAD + height * NODE_H + (height - 1) * GAP_Y,
  };
}

const short = (text, most = MAX_LABEL) => (text.length > most ? `${text.slice(0, most - 1)}…` : text);

/** A node's second line: its agent (cut to leave its state room), or "wait" for a declared wait. */
const subLabel = (task) =>
  `${task.agent ? short(task.agent, MAX_LABEL - task.state.length - 3) : "wait"} · ${task.state}`;

/** The SVG of `tasks`; `onSelect(id)` when a node is clicked (or Enter pressed on it). */
export function drawDag(tasks, selected, onSelect) {
  const { at, width, height } = place(tasks);
  const superseded = new Set(tasks.filter((t) => t.state === "superseded").map((t) => t.id));
  const edges = [];
  for (const task of tasks) {
    for (const need of task.needs || []) {
      if (!at.has(need)) continue;
      const from = at.get(need);
      const to = at.get(task.id);
      const [x1, y1, x2, y2] = [from.x + NODE_W, from.y + NODE_H / 2, to.x, to.y + NODE_H / 2];
      const mid = (x1 + x2) / 2;
      edges.push(
        svg("path", {
          class: superseded.has(need) || superseded.has(task.id) ? "edge superseded" : "edge",
          "data-edge": `${need}>${task.id}`,
          d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 4},${y2}`,
          "marker-end": "url(#arrow)",
        }),
      );
    }
  }
  const nodes = tasks.map((task) => {
    const { x, y } = at.get(task.id);
    const known = KNOWN_STATES.has(task.state) ? task.state : "unknown";
    const node = svg(
      "g",
      {
        class: `node state-${known}${task.id === selected ? " selected" : ""}`,
        "data-task": task.id,
        "data-state": task.state,
        transform: `translate(${x},${y})`,
        tabindex: 0,
        role: "button",
      },
      svg("title", {}, `${task.id} (${task.agent || "a wait for a signal"}): ${task.state}`),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { x: 10, y: 17, class: "label" }, short(task.id)),
      svg("text", { x: 10, y: 33, class: "sub" }, subLabel(task)),
    );
    node.addEventListener("click", () => onSelect(task.id));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") onSelect(task.id);
    });
    return node;
  });
  const arrow = svg(
    "marker",
    { id: "arrow", viewBox: "0 0 8 8", refX: 4, refY: 4, markerWidth: 8, markerHeight: 8, orient: "auto" },
    svg("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }),
  );
  return svg(
    "svg",
    { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "workflow DAG" },
    svg("defs", {}, arrow),
    svg("g", { class: "edges" }, edges),
    svg("g", { class: "nodes" }, nodes),
  );
}
