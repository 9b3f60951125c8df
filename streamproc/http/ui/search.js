// Search (#/search): per provider, what /metrics exposes of the search cache, the provider
// calls, the shared limiter's decisions and the adaptive concurrency limit.

import { call } from "./api.js";
import { cell, el, every, notice, table } from "./dom.js";
import { parseMetrics, sumBy } from "./prom.js";

const POLL_MS = 5000;
const VERDICTS = ["go", "probe", "rate", "spent", "open"];
const OUTCOMES = ["ok", "fail", "neutral"];

export async function searchPage(main, view) {
  const body = el("div");
  main.append(
    el("h1", {}, "Search providers"),
    body,
    el(
      "p",
      { class: "muted" },
      "From this API process's /metrics. Cache totals appear where the stream poller runs " +
        "(the resolver's process); calls, limiter decisions and limits where the search agents " +
        "run. The circuit breaker's state is not exported.",
    ),
  );
  every(view, POLL_MS, async () => {
    const samples = parseMetrics(await call("GET", "/metrics"));
    const hits = sumBy(samples, "streamproc_search_cache_hits_total", "provider");
    const misses = sumBy(samples, "streamproc_search_cache_misses_total", "provider");
    const upstream = sumBy(samples, "streamproc_search_cache_upstream_searches_total", "provider");
    const calls = sumBy(samples, "streamproc_provider_calls_total", "provider", "outcome");
    const verdicts = sumBy(samples, "streamproc_limiter_decisions_total", "provider", "verdict");
    const limits = sumBy(samples, "streamproc_provider_concurrency_limit", "provider");
    const providers = [...new Set([hits, misses, upstream, calls, verdicts, limits].flatMap(Object.keys))].sort();
    if (!providers.length) {
      body.replaceChildren(notice("This process's /metrics has no search figures."));
      return;
    }
    const count = (n) => (n === undefined ? "–" : String(n));
    const parts = (counts, names) =>
      counts ? names.filter((n) => counts[n]).map((n) => `${n} ${counts[n]}`).join(", ") || "0" : "–";
    const rows = providers.map((p) => {
      const asked = (hits[p] || 0) + (misses[p] || 0);
      return el(
        "tr",
        { "data-provider": p },
        cell(p),
        cell(count(hits[p])),
        cell(count(misses[p])),
        cell(asked ? `${Math.round((100 * (hits[p] || 0)) / asked)}%` : "–"),
        cell(count(upstream[p])),
        cell(parts(calls[p], OUTCOMES)),
        cell(parts(verdicts[p], VERDICTS)),
        cell(count(limits[p])),
        cell(el("span", { class: "muted" }, "not exported")),
      );
    });
    body.replaceChildren(
      table(
        ["provider", "cache hits", "misses", "hit ratio", "upstream searches", "calls", "limiter decisions", "in-flight limit", "breaker"],
        rows,
        { class: "search-table" },
      ),
    );
  });
}
