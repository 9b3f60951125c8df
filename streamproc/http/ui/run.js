// One run (#/workflows/<id>): its DAG, kept live by its event stream (tasks a spawn or a map
// adds included); a task's details, streamed output among them, on click (and the signal an
// awaiting task waits for, sent from there); cancel while it runs.

import { call, enc, follow } from "./api.js";
import { drawDag } from "./dag.js";
import { badge, cell, confirmed, el, notice, pre, span, table, when } from "./dom.js";
import { OutputPanel, RunOutput } from "./output.js";
import { SignalForm } from "./signal.js";

const REFRESH_MS = 150; // events coming together are one read of the state

export async function runPage(main, view, id) {
  const path = `/workflows/${enc(id)}`;
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
  let state = await call("GET", path);
  let selected = null;
  let panel = null; // the selected task's output, kept across redraws
  let signal = null; // its signal form, kept across redraws: what was typed stays
  const inputs = new Map(); // `${task}:${attempt}` -> input
  const taskOf = (id) => state.tasks.find((t) => t.id === id);

  const draw = () => {
    drawHead(head, state);
    actions.hidden = state.status !== "running" && !cancel.querySelector(".ok");
    graph.replaceChildren(drawDag(state.tasks, selected, select));
    if (!selected) return;
    panel.update(taskOf(selected));
    signal.update(taskOf(selected));
    const parts = { output: panel.element, signal: signal.element };
    drawDetails(details, taskOf(selected), selected, path, inputs, [...seen.values()], parts);
  };
  const select = (task) => {
    selected = task;
    panel = new OutputPanel(output, task);
    signal = new SignalForm(path);
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
        if (output.add(data) && data.task === selected) panel.update(taskOf(selected));
        return;
      }
      if (eventId && seen.has(eventId)) return;
      seen.set(eventId || `${seen.size}`, { kind, ...data });
      events.appendChild(
        el("li", {}, `${when(Number(data.at))} ${kind}${data.task ? ` ${data.task}` : ""}`),
      );
      refresh();
    },
    (error) => view.fail(error),
  );
  view.onClose(stop);
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

function drawDetails(box, task, taskId, path, inputs, events, { output, signal }) {
  if (!task) {
    box.replaceChildren(notice(`No task ${taskId} in this run.`));
    return;
  }
  const taskPath = `${path}/tasks/${enc(task.id)}`;
  const input = el("div", { class: "input" });
  const key = `${task.id}:${task.attempt}`;
  if (inputs.has(key)) input.appendChild(pre(inputs.get(key), { "data-part": "input" }));
  else {
    input.appendChild(el("p", { class: "muted" }, "loading…"));
    call("GET", `${taskPath}/input`).then(
      (value) => {
        inputs.set(key, value);
        input.replaceChildren(pre(value, { "data-part": "input" }));
      },
      (error) => input.replaceChildren(notice(error.message, "error")),
    );
  }
  const result = el("div", { class: "result" });
  const elided = task.result && typeof task.result === "object" && task.result.elided === true;
  if (elided) {
    const load = el("button", { type: "button" }, `Load the whole result (${task.result.bytes} bytes)`);
    load.addEventListener("click", async () => {
      load.disabled = true;
      try {
        result.replaceChildren(pre(await call("GET", `${taskPath}/result`), { "data-part": "result" }));
      } catch (error) {
        result.appendChild(notice(error.message, "error"));
      }
    });
    result.appendChild(load);
  } else result.appendChild(pre(task.result, { "data-part": "result" }));
  const fact = (name, value) => (value === "" || value === null || value === undefined ? [] : [el("dt", {}, name), el("dd", {}, value)]);
  const own = events.filter((event) => event.task === task.id);
  box.replaceChildren(
    el("h2", {}, "Task ", el("code", { class: "task-id" }, task.id), " ", badge(task.state)),
    el(
      "dl",
      { class: "facts" },
      fact("agent", task.agent),
      fact("signal", task.wait_for),
      fact("attempt", String(task.attempt)),
      fact("failures", String(task.failures)),
      fact("lost deliveries", String(task.lost)),
      fact("needs", task.needs.join(", ") || "none"),
      fact("added by", task.spawner),
      fact("maps over", task.map),
      fact("queued", when(task.queued_ms)),
      fact("began", when(task.began_ms)),
      fact("ended", when(task.ended_ms)),
      fact("waited", task.queued_ms && task.began_ms ? span(task.began_ms - task.queued_ms) : ""),
      fact("ran", task.began_ms && task.ended_ms ? span(task.ended_ms - task.began_ms) : ""),
      fact("worker", task.consumer),
    ),
    signal,
    task.error ? el("div", {}, el("h3", {}, "Error"), el("pre", { class: "error", "data-part": "error" }, task.error)) : "",
    el("h3", {}, "Input"),
    input,
    el("h3", {}, "Result"),
    result,
    el("h3", {}, "Streamed output"),
    output,
    el("h3", {}, "Attempt history"),
    task.history.length
      ? table(
          ["attempt", "what", "when", "details"],
          task.history.map((entry) => {
            const { att, attempt, kind, outcome, at, ...rest } = entry;
            return el(
              "tr",
              {},
              cell(String(att ?? attempt ?? "")),
              cell(String(kind ?? outcome ?? "")),
              cell(when(Number(at))),
              cell(pre(rest)),
            );
          }),
          { class: "history" },
        )
      : el("p", { class: "muted" }, "No failed, lost or adjusted attempt."),
    el("h3", {}, "Events"),
    own.length
      ? table(
          ["when", "event", "attempt", "details"],
          own.map(({ kind, at, att, wf, task: _, v, id, ...rest }) =>
            el("tr", {}, cell(when(Number(at))), cell(kind), cell(att || ""), cell(fields(rest))),
          ),
          { class: "task-events" },
        )
      : el("p", { class: "muted" }, "None yet."),
  );
}

/** An event's other fields, one `name: value` line each. */
function fields(rest) {
  const lines = Object.entries(rest).map(
    ([name, value]) => `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`,
  );
  return el("span", { class: "fields" }, lines.join("\n"));
}
