// Agents (#/agents): each agent's stream figures from GET /agents, and a small chart of
// tasks finished per second over the last minutes, from successive reads of /metrics.

import { call, enc } from "./api.js";
import { cell, el, every, notice, svg, table } from "./dom.js";
import { parseMetrics, sumBy } from "./prom.js";

const POLL_MS = 3000;
const WINDOW_MS = 10 * 60 * 1000;
const CHART_W = 160;
const CHART_H = 32;
const history = new Map(); // agent -> [{at, finished}], kept while the tab lives

export async function agentsPage(main, view) {
  const body = el("div");
  const note = el("p", { class: "muted" });
  main.append(el("h1", {}, "Agents"), body, note);
  every(view, POLL_MS, async () => {
    const [rows, metrics] = await Promise.all([call("GET", "/agents"), call("GET", "/metrics").catch(() => "")]);
    const finished = sumBy(parseMetrics(metrics), "streamproc_tasks_total", "agent");
    const now = Date.now();
    for (const [agent, count] of Object.entries(finished)) {
      const samples = history.get(agent) || [];
      samples.push({ at: now, finished: count });
      history.set(agent, samples.filter((s) => now - s.at <= WINDOW_MS));
    }
    body.replaceChildren(rows.length ? agentsTable(rows) : notice("No agent has a stream yet."));
    note.textContent = Object.keys(finished).length
      ? "tasks/s: attempts finished by the workers of this API's process, over the last 10 minutes."
      : "tasks/s: not shown: the processes that run agents count finished tasks (their /metrics), " +
        "and this API process runs none.";
  });
}

function agentsTable(rows) {
  return table(
    ["agent", "stream length", "lag", "pending", "consumers", "desired", "dead letters", "tasks/s"],
    rows.map((row) =>
      el(
        "tr",
        { "data-agent": row.agent, class: row.unserved ? "unserved" : "" },
        cell(row.agent, row.unserved ? el("span", { class: "badge state-failed" }, "no consumer") : ""),
        cell(String(row.length)),
        cell(String(row.lag)),
        cell(String(row.pending)),
        cell(String(row.consumers)),
        cell(row.desired === null || row.desired === undefined ? "–" : String(row.desired)),
        cell(row.dead_letters ? el("a", { href: `#/dead/${enc(row.agent)}` }, String(row.dead_letters)) : "0"),
        cell(chart(history.get(row.agent) || [])),
      ),
    ),
    { class: "agents-table" },
  );
}

/** A sparkline of the rate between successive samples, with the latest rate beside it. */
function chart(samples) {
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].at - samples[i - 1].at) / 1000;
    rates.push({ at: samples[i].at, rate: Math.max(0, samples[i].finished - samples[i - 1].finished) / seconds });
  }
  if (!rates.length) return el("span", { class: "muted" }, "–");
  const top = Math.max(1, ...rates.map((r) => r.rate));
  const end = rates[rates.length - 1].at;
  const start = Math.min(rates[0].at, end - POLL_MS); // the chart spans what was seen
  const x = (at) => (CHART_W * (at - start)) / (end - start);
  const y = (rate) => CHART_H - 2 - (CHART_H - 4) * (rate / top);
  const drawn = rates.length > 1 ? rates : [{ at: start, rate: rates[0].rate }, ...rates];
  const points = drawn
    .map((r) => `${x(r.at).toFixed(1)},${y(r.rate).toFixed(1)}`)
    .join(" ");
  return el(
    "span",
    { class: "chart" },
    svg(
      "svg",
      { width: CHART_W, height: CHART_H, viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: "img", "aria-label": "tasks per second" },
      svg("polyline", { points, class: "rate" }),
    ),
    ` ${rates[rates.length - 1].rate.toFixed(1)}`,
  );
}
