// Search (#/search): per provider, what Redis holds for every process (GET /search: the cache's
// counters, the shared breaker, spent mark, rate and quota), then what this API process's own
// /metrics counts (calls, limiter decisions, in-flight limit), which only a searching process has.

import { call } from "./api.js";
import { badge, cell, el, every, notice, table, when } from "./dom.js";
import { parseMetrics, sumBy } from "./prom.js";

const POLL_MS = 5000;
const VERDICTS = ["go", "probe", "rate", "spent", "open"];
const OUTCOMES = ["ok", "fail", "neutral"];

export async function searchPage(main, view) {
  const shared = el("div");
  const local = el("div");
  main.append(
    el("h1", {}, "Search providers"),
    shared,
    el("h2", {}, "This process"),
    local,
  );
  every(view, POLL_MS, async () => {
    shared.replaceChildren(sharedTable(await call("GET", "/search")));
    local.replaceChildren(processTable(parseMetrics(await call("GET", "/metrics"))));
  });
}

function sharedTable(figures) {
  const rows = figures.providers.map((p) =>
    el(
      "tr",
      { "data-provider": p.provider },
      cell(p.provider),
      cell(String(p.hits)),
      cell(String(p.misses)),
      cell(p.hit_ratio === null ? "–" : `${Math.round(100 * p.hit_ratio)}%`),
      cell(String(p.upstream)),
      cell(
        el("span", { class: "breaker", "data-breaker": p.breaker }, badge(p.breaker)),
        p.breaker_until ? ` until ${when(p.breaker_until)}` : "",
      ),
      cell(p.spent === null ? "–" : `${p.spent}${p.spent_until ? ` (until ${when(p.spent_until)})` : ""}`),
      cell(p.next_slot ? when(p.next_slot) : "–"),
      cell(Object.entries(p.quota_calls).map(([period, n]) => `${period}: ${n}`).join(", ") || "–"),
    ),
  );
  return el(
    "div",
    {},
    table(
      ["provider", "cache hits", "misses", "hit ratio", "upstream searches", "breaker", "allowance spent", "next slot at the rate", "quota calls"],
      rows,
      { class: "search-table" },
    ),
    el(
      "p",
      { class: "muted" },
      `From Redis, shared by every process. Searches no provider answered: ${figures.unanswered}. ` +
        "Limiter decisions are counted only by the processes that search (below, when this is one).",
    ),
  );
}

function processTable(samples) {
  const calls = sumBy(samples, "streamproc_provider_calls_total", "provider", "outcome");
  const verdicts = sumBy(samples, "streamproc_limiter_decisions_total", "provider", "verdict");
  const limits = sumBy(samples, "streamproc_provider_concurrency_limit", "provider");
  const providers = [...new Set([calls, verdicts, limits].flatMap(Object.keys))].sort();
  if (!providers.length) {
    return notice("This process searches nothing: its /metrics has no calls or limiter decisions.");
  }
  const parts = (counts, names) =>
    counts ? names.filter((n) => counts[n]).map((n) => `${n} ${counts[n]}`).join(", ") || "0" : "–";
  const rows = providers.map((p) =>
    el(
      "tr",
      { "data-provider": p },
      cell(p),
      cell(parts(calls[p], OUTCOMES)),
      cell(parts(verdicts[p], VERDICTS)),
      cell(limits[p] === undefined ? "–" : String(limits[p])),
    ),
  );
  return table(["provider", "calls", "limiter decisions", "in-flight limit"], rows, { class: "process-search-table" });
}
