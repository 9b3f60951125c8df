// Building the page from values: every value goes in as text or an attribute, never as markup.

import { lacks } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: `el("a", {href: "#/"}, "text", otherNode)`. */
export const el = (tag, attrs = {}, ...children) => fill(document.createElement(tag), attrs, children);

/** An SVG element, the same way. */
export const svg = (tag, attrs = {}, ...children) =>
  fill(document.createElementNS(SVG_NS, tag), attrs, children);

/**
 * Make `shown` (in the page) read as `fresh`, keeping every node of it that already does: only
 * what changed is swapped.  A redraw that took a node out, even to put an equal one back, would
 * drop its focus (what is typed next goes nowhere) and a click pressed on it but not yet
 * released.  A node kept keeps its listeners: `fresh`'s must do what `shown`'s do wherever the
 * two read the same.
 */
export function patch(shown, fresh) {
  if (shown.isEqualNode(fresh)) return;
  const theirs = [...fresh.childNodes];
  const ours = [...shown.childNodes];
  if (ours.length !== theirs.length || !shown.cloneNode(false).isEqualNode(fresh.cloneNode(false))) {
    shown.replaceWith(fresh);
    return;
  }
  ours.forEach((node, i) => patch(node, theirs[i]));
}

/** Any JSON value as indented text. */
export const json = (value) => (value === undefined ? "" : JSON.stringify(value, null, 2));

export const pre = (value, attrs = {}) => el("pre", attrs, json(value));

export function notice(text, kind = "info") {
  return el("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function table(head, rows, attrs = {}) {
  return el(
    "table",
    attrs,
    el("thead", {}, el("tr", {}, head.map((name) => el("th", {}, name)))),
    el("tbody", {}, rows),
  );
}

export const cell = (...children) => el("td", {}, ...children);

/** A time (Unix ms) as UTC, to the second. */
export const when = (ms) =>
  ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "";

/** A span of milliseconds, readable: 850 ms, 12.3 s, 4 min 5 s, 2 h 3 min. */
export function span(ms) {
  if (ms === null || ms === undefined || ms < 0 || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export const ago = (ms) => (ms ? `${span(Date.now() - ms)} ago` : "");

/** A status or state as a coloured badge; an unknown one is neutral. */
export const KNOWN_STATES = new Set([
  "waiting", "queued", "running", "delayed", "awaiting", "done", "failed", "skipped",
  "superseded",
  "completed", "cancelled",
]);
export const badge = (state) =>
  el("span", { class: `badge state-${KNOWN_STATES.has(state) ? state : "unknown"}` }, state || "?");

/**
 * A button that asks again before acting: the first click shows "confirm" and "keep", the
 * confirmation runs `act()`; its result (or error) is shown beside it.  Disabled once the
 * token is known to lack `scope`.
 */
export function confirmed(label, question, act, scope) {
  const box = el("span", { class: "confirm" });
  const start = el("button", { type: "button", class: "action" }, label);
  if (lacks(scope)) {
    start.disabled = true;
    start.title = `this token lacks the ${scope} scope`;
  }
  const reset = () => box.replaceChildren(start);
  start.addEventListener("click", () => {
    const yes = el("button", { type: "button", class: "action danger" }, `Confirm: ${question}`);
    const no = el("button", { type: "button" }, "Keep");
    no.addEventListener("click", reset);
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try {
        const outcome = await act();
        box.replaceChildren(el("span", { class: "ok" }, outcome));
      } catch (error) {
        box.replaceChildren(start, el("span", { class: "error" }, error.message));
        if (error.status === 403) start.disabled = true;
      }
    });
    box.replaceChildren(yes, no);
  });
  box.appendChild(start);
  return box;
}

/** Run `fn` now and every `ms` until `view.close()`, never two at once. */
export function every(view, ms, fn) {
  let timer = null;
  const tick = async () => {
    try {
      await fn();
    } catch (error) {
      view.fail(error);
    }
    if (!view.closed) timer = setTimeout(tick, ms);
  };
  view.onClose(() => clearTimeout(timer));
  tick();
}
