// Send the signal an awaiting task waits for, from its details: the payload is typed as JSON
// and checked in the page (malformed, nothing is sent), each send carries a fresh
// Idempotency-Key so a retried request is applied once, and a refusal shows the API's line.

import { call, enc, lacks } from "./api.js";
import { el } from "./dom.js";

const SCOPE = "submit";

// randomUUID exists only in a secure context (https or loopback); 16 random bytes serve as well.
const freshKey = () =>
  crypto.randomUUID?.() ??
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

/** The form of one task, kept across redraws so what was typed stays; shown while the task
 * awaits a signal (`update(task)`). */
export class SignalForm {
  constructor(path) {
    this.path = path;
    this.name = el("input", { type: "text", readonly: true });
    this.payload = el("textarea", { rows: 3, spellcheck: "false" });
    this.payload.value = "{}";
    this.payload.addEventListener("input", () => this.say("", "")); // an earlier verdict is stale
    this.send = el("button", { type: "submit", class: "action" }, "Send");
    this.said = el("span");
    this.element = el(
      "form",
      { class: "signal", "data-part": "signal", onsubmit: (event) => this.submit(event) },
      el("label", {}, "Signal ", this.name),
      el("label", {}, "Payload (JSON) ", this.payload),
      el("div", {}, this.send, this.said),
    );
  }

  update(task) {
    this.element.hidden = !task || task.state !== "awaiting" || !task.wait_for;
    if (this.element.hidden) return this.say("", ""); // a later wait starts afresh
    this.name.value = task.wait_for;
    if (lacks(SCOPE)) {
      this.send.disabled = true;
      this.send.title = `this token lacks the ${SCOPE} scope`;
    }
  }

  say(text, kind) {
    this.said.className = kind;
    this.said.setAttribute("role", kind === "error" ? "alert" : "status");
    this.said.textContent = text;
  }

  async submit(event) {
    event.preventDefault();
    let payload;
    try {
      payload = JSON.parse(this.payload.value);
    } catch (error) {
      this.say(`The payload is not JSON: ${error.message}`, "error");
      return;
    }
    this.send.disabled = true;
    this.say("sending…", "muted");
    try {
      const path = `${this.path}/signals/${enc(this.name.value)}`;
      const sent = await call("POST", path, payload, { "Idempotency-Key": freshKey() });
      this.say(sent.task ? `${sent.outcome}: ${sent.task} resumes` : sent.outcome, "ok");
    } catch (error) {
      this.say(error.message, "error");
    }
    this.send.disabled = lacks(SCOPE);
  }
}
