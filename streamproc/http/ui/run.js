// One run (#/workflows/<id>): its DAG, kept live by its event stream (tasks a spawn or a map
// adds included, and tasks that run on after the run failed or was cancelled); a task's
// details, streamed output among them, on click (and the signal an awaiting task waits for,
// sent from there); cancel while it runs.

import { call, enc, follow } from "./api.js";
import { drawDag } from "./dag.js";
import { TaskDetails } from "./details.js";
import { badge, confirmed, el, patch, span, when } from "./dom.js";
import { RunOutput } from "./output.js";

const REFRESH_MS = 150; // events coming together are one read of the state
const TICK_MS = 1000;

export async function runPage(main, view, id) {
  const path = `/workflows/${enc(id)}`;
  let state = await call("GET", path); // first: an unknown run shows its error alone
  const head = el("div");
  const cancel = confirmed(
    "Cancel run",
    "cancel this run",
    async () => {
      const reply = await call("POST", `${path}/cancel?reason=${enc("cancelled from the dashboard")}`);
      refresh();
      return reply.cancelled ? "cancelled" : "it had already ended";
    },
    "submit",
  );
  const actions = el("div", { class: "actions" }, cancel); // kept across redraws: a pending confirmation too
  const graph = el("div", { class: "graph" });
  const details = el("section", { class: "details", "aria-live": "polite" });
  const events = el("ol", { class: "events" });
  main.append(
    el("section", { class: "run-head" }, head, actions),
    graph,
    details,
    el("details", { class: "event-log" }, el("summary", {}, "Events"), events),
  );
  const seen = new Map(); // event id -> lifecycle event: a reconnection replays them
  const output = new RunOutput(); // the chunks, kept apart: they change no state
  let selected = null;
  let shown = null; // the selected task's details: its form and output kept across redraws
  const inputs = new Map(); // `${task}:${attempt}` -> input
  const taskOf = (id) => state.tasks.find((t) => t.id === id);

  const draw = () => {
    drawHead(head, state);
    actions.hidden = state.status !== "running" && !cancel.querySelector(".ok");
    const dag = drawDag(state.tasks, selected, select);
    if (graph.firstChild) patch(graph.firstChild, dag); // a click under way on a node stays
    else graph.append(dag);
    if (selected) shown.draw(taskOf(selected), inputs, [...seen.values()]);
  };
  const select = (task) => {
    selected = task;
    shown = new TaskDetails(details, path, output, task);
    draw();
    details.scrollIntoView({ block: "nearest" });
  };
  // One read of the state at a time; an event during a read asks for one more after it.
  let reading = false;
  let stale = false;
  function refresh() {
    stale = true;
    if (reading) return;
    reading = true;
    setTimeout(async () => {
      while (stale && !view.closed) {
        stale = false;
        try {
          state = await call("GET", path);
          draw();
        } catch (error) {
          view.fail(error);
        }
      }
      reading = false;
    }, REFRESH_MS);
  }
  draw();
  // An ended run's stream replays its kept events and ends: the task details show them.
  const stop = follow(
    id,
    (kind, data, eventId) => {
      if (kind === "output") {
        if (output.add(data) && data.task === selected) shown.output.update(taskOf(selected));
        return;
      }
      if (eventId && seen.has(eventId)) return;
      seen.set(eventId || `${seen.size}`, { kind, ...data });
      events.appendChild(
        el("li", {}, `${when(Number(data.at))} ${kind} ${data.task ?? data.target ?? ""}`.trimEnd()),
      );
      refresh();
    },
    (error) => view.fail(error),
  );
  // "running for" counts on between events.
  const ticking = setInterval(() => state.ended_ms || drawHead(head, state), TICK_MS);
  view.onClose(() => {
    stop();
    clearInterval(ticking);
  });
}

function drawHead(head, state) {
  const ended = state.ended_ms ? state.ended_ms : Date.now();
  const counts = {};
  for (const task of state.tasks) counts[task.state] = (counts[task.state] || 0) + 1;
  head.replaceChildren(
    el("h1", {}, "Run ", el("code", { class: "run-id" }, state.id), " ", badge(state.status)),
    el(
      "p",
      { class: "facts" },
      state.name ? `${state.name} · ` : "",
      `created ${when(state.created_ms)} · ${state.ended_ms ? "took" : "running for"} `,
      span(ended - state.created_ms),
      ` · ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")}`,
    ),
    state.reason ? el("p", { class: "reason" }, state.reason) : "",
  );
}
