// The runs (#/): newest first, filtered by status and name, refreshed every few seconds;
// and a box to open a run by its id.

import { ApiError, call, enc } from "./api.js";
import { ago, badge, cell, el, every, notice, span, table } from "./dom.js";

const POLL_MS = 3000;
const PAGE = 50;
const STATUSES = ["", "running", "completed", "failed", "cancelled"];

export async function runsPage(main, view) {
  const status = el("select", { name: "status", "aria-label": "status" },
    STATUSES.map((s) => el("option", { value: s }, s || "any status")));
  const name = el("input", { name: "name", type: "search", placeholder: "name (exact)", "aria-label": "name" });
  const byId = el("input", { name: "id", placeholder: "workflow id", "aria-label": "workflow id" });
  const open = el("form", { class: "open-run" }, byId, el("button", { type: "submit" }, "Open run"));
  open.addEventListener("submit", (event) => {
    event.preventDefault();
    if (byId.value.trim()) location.hash = `#/workflows/${enc(byId.value.trim())}`;
  });
  const filters = el("form", { class: "filters" }, status, name);
  const list = el("div", { class: "runs" });
  const pager = el("div", { class: "pager" });
  main.append(
    el("h1", {}, "Runs"),
    el("div", { class: "toolbar" }, filters, open),
    list,
    pager,
  );
  const cursors = [null]; // the cursor of each page shown so far
  let asked = 0; // a reply to an older question (the filters changed since) is dropped
  const load = async () => {
    const mine = ++asked;
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (status.value) query.set("status", status.value);
    if (name.value.trim()) query.set("name", name.value.trim());
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    let page;
    try {
      page = await call("GET", `/workflows?${query}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) {
        list.replaceChildren(notice("This API does not list workflows (GET /workflows): open a run by its id."));
        return;
      }
      throw error;
    }
    if (mine !== asked || view.closed) return;
    list.replaceChildren(runsTable(page.workflows));
    drawPager(page.cursor);
  };
  const drawPager = (next) => {
    const newer = el("button", { type: "button", disabled: cursors.length === 1 }, "Newer");
    const older = el("button", { type: "button", disabled: !next }, "Older");
    newer.addEventListener("click", () => { cursors.pop(); load().catch((e) => view.fail(e)); });
    older.addEventListener("click", () => { cursors.push(next); load().catch((e) => view.fail(e)); });
    pager.replaceChildren(newer, older);
  };
  const again = () => {
    cursors.splice(1);
    load().catch((error) => view.fail(error));
  };
  status.addEventListener("change", again);
  name.addEventListener("change", again);
  filters.addEventListener("submit", (event) => {
    event.preventDefault(); // Enter in the name: filter, not reload
    again();
  });
  // Live: the first page is read again every few seconds; older pages stay as they were.
  every(view, POLL_MS, () => (cursors.length === 1 ? load() : undefined));
}

function runsTable(workflows) {
  if (!workflows.length) return notice("No run matches.");
  const rows = workflows.map((run) => {
    const tasks = run.tasks || {};
    const counts = Object.entries(tasks)
      .filter(([state, count]) => count && state !== "total" && state !== "done")
      .map(([state, count]) => `${count} ${state}`)
      .join(", ");
    const took = run.ended ? span(run.ended - run.created) : `${span(Date.now() - run.created)} so far`;
    return el(
      "tr",
      { "data-run": run.id },
      cell(el("a", { href: `#/workflows/${enc(run.id)}` }, run.id)),
      cell(run.name || ""),
      cell(badge(run.status)),
      cell(ago(run.created)),
      cell(took),
      cell(`${tasks.done ?? 0}/${tasks.total ?? "?"}`, counts ? el("span", { class: "muted" }, ` (${counts})`) : ""),
      cell(el("span", { class: "reason" }, run.reason || "")),
    );
  });
  return table(["id", "name", "status", "age", "duration", "tasks done", "reason"], rows, { class: "runs-table" });
}
