// A task's details on its run's page: facts, the signal it awaits, input, result, streamed
// output, attempt history and events.  Every lifecycle event of the run redraws them, so a
// redraw moves nothing a user may be working in: the signal form and the output are built once
// and never taken out of the page, and of each other part only what changed is swapped (see
// `patch`).

import { call, enc } from "./api.js";
import { badge, cell, el, notice, patch, pre, span, table, when } from "./dom.js";
import { OutputPanel } from "./output.js";
import { SignalForm } from "./signal.js";

const PARTS = ["head", "error", "input", "result", "history", "events"];

/** The details of one task, drawn into `box` for as long as it is selected. */
export class TaskDetails {
  constructor(box, path, output, taskId) {
    this.path = path;
    this.taskId = taskId;
    this.output = new OutputPanel(output, taskId);
    this.signal = new SignalForm(path);
    this.parts = Object.fromEntries(PARTS.map((name) => [name, el("div")]));
    this.asked = new Set(); // inputs asked for: one read each, whatever the redraws
    this.whole = new Map(); // `${task}:${attempt}` -> its whole result, once loaded
    this.key = null; // the attempt shown: what a read brings for an earlier one is dropped
    const { head, error, input, result, history, events } = this.parts;
    this.outputPart = el("div", {}, el("h3", {}, "Streamed output"), this.output.element);
    box.replaceChildren(head, this.signal.element, error, input, result, this.outputPart, history, events);
  }

  /** Bring the details up to `task` (undefined: the run has no such task). */
  draw(task, inputs, events) {
    this.output.update(task);
    this.signal.update(task);
    this.outputPart.hidden = !task;
    if (!task) {
      this.show("head", notice(`No task ${this.taskId} in this run.`));
      for (const name of PARTS.slice(1)) this.show(name, null);
      return;
    }
    const key = (this.key = `${task.id}:${task.attempt}`);
    this.show("head", head(task));
    this.show("error", task.error ? errorOf(task) : null);
    this.show("input", this.input(task, key, inputs));
    this.show("result", this.result(task, key));
    this.show("history", history(task));
    this.show("events", ownEvents(task, events));
  }

  /** Show `node` (null: nothing) as the part `name`, swapping only what changed. */
  show(name, node, key = this.key) {
    if (key !== this.key) return;
    const part = this.parts[name];
    if (node === null) part.replaceChildren();
    else if (part.firstChild) patch(part.firstChild, node);
    else part.append(node);
  }

  input(task, key, inputs) {
    const box = inputBox();
    if (inputs.has(key)) return fill(box, pre(inputs.get(key), { "data-part": "input" }));
    if (!this.asked.has(key)) {
      this.asked.add(key);
      call("GET", `${this.taskPath(task)}/input`).then(
        (value) => {
          inputs.set(key, value);
          this.show("input", this.input(task, key, inputs), key);
        },
        (error) => {
          this.asked.delete(key); // a later redraw asks again
          this.show("input", fill(inputBox(), notice(error.message, "error")), key);
        },
      );
    }
    return fill(box, el("p", { class: "muted" }, "loading…"));
  }

  result(task, key) {
    const box = el("div", { class: "result" }, el("h3", {}, "Result"));
    const elided = task.result && typeof task.result === "object" && task.result.elided === true;
    if (this.whole.has(key)) return fill(box, pre(this.whole.get(key), { "data-part": "result" }));
    if (!elided) return fill(box, pre(task.result, { "data-part": "result" }));
    const load = el("button", { type: "button" }, `Load the whole result (${task.result.bytes} bytes)`);
    load.addEventListener("click", async () => {
      load.disabled = true;
      try {
        this.whole.set(key, await call("GET", `${this.taskPath(task)}/result`));
        this.show("result", this.result(task, key), key);
      } catch (error) {
        load.after(notice(error.message, "error"));
      }
    });
    return fill(box, load);
  }

  taskPath(task) {
    return `${this.path}/tasks/${enc(task.id)}`;
  }
}

const inputBox = () => el("div", { class: "input" }, el("h3", {}, "Input"));

const fill = (box, ...children) => {
  box.append(...children);
  return box;
};

const fact = (name, value) =>
  value === "" || value === null || value === undefined ? [] : [el("dt", {}, name), el("dd", {}, value)];

function head(task) {
  return el(
    "div",
    {},
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
  );
}

const errorOf = (task) =>
  el("div", {}, el("h3", {}, "Error"), el("pre", { class: "error", "data-part": "error" }, task.error));

function history(task) {
  const rows = task.history.map((entry) => {
    const { att, attempt, kind, outcome, at, ...rest } = entry;
    return el(
      "tr",
      {},
      cell(String(att ?? attempt ?? "")),
      cell(String(kind ?? outcome ?? "")),
      cell(when(Number(at))),
      cell(pre(rest)),
    );
  });
  return el(
    "div",
    {},
    el("h3", {}, "Attempt history"),
    rows.length
      ? table(["attempt", "what", "when", "details"], rows, { class: "history" })
      : el("p", { class: "muted" }, "No failed, lost or adjusted attempt."),
  );
}

function ownEvents(task, events) {
  // A spawner's tasks_superseded names it as its target: it has no task of its own.
  const own = events.filter((event) => (event.task ?? event.target) === task.id);
  return el(
    "div",
    {},
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

const TIMES = new Set(["began"]); // event fields that hold a time (Unix ms)

/** An event's other fields, one `name: value` line each. */
function fields(rest) {
  const shown = (name, value) =>
    TIMES.has(name) ? when(Number(value)) : typeof value === "string" ? value : JSON.stringify(value);
  const lines = Object.entries(rest).map(([name, value]) => `${name}: ${shown(name, value)}`);
  return el("span", { class: "fields" }, lines.join("\n"));
}
