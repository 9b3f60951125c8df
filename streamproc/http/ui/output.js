// A task's streamed output (the `output` events of its run) in its details, live: each
// attempt's chunks in the order they came, text appended as it is, any other value as its
// JSON on a line of its own, and the attempts a later one replaced marked superseded.  Every
// chunk is put in the page as text, never as markup.

import { el } from "./dom.js";

const ENDED = new Set(["done", "failed", "skipped", "superseded"]);

/** Every chunk of one run, by task then attempt; a chunk seen again (a reconnection replays
 * the stream) is kept once. */
export class RunOutput {
  constructor() {
    this.tasks = new Map(); // task -> Map(attempt number -> {chunks, seqs, superseded})
  }

  /** Keep one `output` event's chunk; false when it was already kept. */
  add(event) {
    if (!this.tasks.has(event.task)) this.tasks.set(event.task, new Map());
    const attempts = this.tasks.get(event.task);
    const number = Number(event.att);
    if (!attempts.has(number)) attempts.set(number, { chunks: [], seqs: new Set(), superseded: false });
    const attempt = attempts.get(number);
    attempt.superseded ||= event.superseded === true;
    if (attempt.seqs.has(event.seq)) return false;
    attempt.seqs.add(event.seq);
    attempt.chunks.push(event);
    return true;
  }

  attempts(task) {
    return [...(this.tasks.get(task) || new Map()).entries()].sort(([a], [b]) => a - b);
  }
}

/** The output of one task as a panel that `update(task)` brings up to date: it appends the
 * chunks that came since, so a long output is not redrawn for each one. */
export class OutputPanel {
  constructor(output, taskId) {
    this.output = output;
    this.taskId = taskId;
    this.blocks = new Map(); // attempt number -> {box, text, shown, lineOpen}
    this.empty = el("p", { class: "muted" }, "No output yet.");
    this.element = el("div", { class: "output", "data-part": "output" }, this.empty);
  }

  /** Show what came since the last update; `task` (its state) says which attempt is current. */
  update(task) {
    const attempts = this.output.attempts(this.taskId);
    this.empty.hidden = attempts.length > 0;
    this.empty.textContent = task && ENDED.has(task.state) ? "None." : "No output yet.";
    for (const [number, attempt] of attempts) {
      const block = this.blocks.get(number) || this.addBlock(number);
      const superseded = attempt.superseded || (task && number < task.attempt);
      block.box.classList.toggle("superseded", Boolean(superseded));
      block.note.textContent = superseded ? " · superseded: a later attempt ran" : "";
      const { text } = block;
      const followed = text.scrollTop + text.clientHeight >= text.scrollHeight - 4; // at its end
      for (const chunk of attempt.chunks.slice(block.shown)) append(block, chunk);
      block.shown = attempt.chunks.length;
      if (followed) text.scrollTop = text.scrollHeight; // keep following what comes
    }
  }

  addBlock(number) {
    const note = el("span", { class: "note" });
    const text = el("pre", {});
    const box = el("div", { class: "attempt", "data-attempt": number }, el("h4", {}, `attempt ${number}`, note), text);
    const later = [...this.blocks.keys()].filter((n) => n > number).sort((a, b) => a - b)[0];
    this.element.insertBefore(box, later === undefined ? null : this.blocks.get(later).box);
    const block = { box, note, text, shown: 0, lineOpen: false };
    this.blocks.set(number, block);
    return block;
  }
}

/** One chunk at the end of its attempt's text: a str as it is, a JSON value on its own line. */
function append(block, chunk) {
  if (chunk.format === "text" && typeof chunk.chunk === "string") {
    block.text.appendChild(document.createTextNode(chunk.chunk));
    if (chunk.chunk) block.lineOpen = !chunk.chunk.endsWith("\n");
    return;
  }
  if (block.lineOpen) block.text.appendChild(document.createTextNode("\n"));
  block.text.appendChild(el("span", { class: "json" }, JSON.stringify(chunk.chunk)));
  block.text.appendChild(document.createTextNode("\n"));
  block.lineOpen = false;
}
