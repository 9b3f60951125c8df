// Reading Prometheus's text exposition format (GET /metrics) into samples.

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample: `{name, labels, value}`; comments and malformed lines are left out. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] || "").matchAll(LABEL)) {
      labels[key] = value.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The samples of metric `name`, summed by the value of label `by` (then by `also`, if given). */
export function sumBy(samples, name, by, also) {
  const out = {};
  for (const sample of samples) {
    if (sample.name !== name || !(by in sample.labels)) continue;
    const key = sample.labels[by];
    if (also === undefined) out[key] = (out[key] || 0) + sample.value;
    else {
      out[key] ??= {};
      const sub = sample.labels[also];
      out[key][sub] = (out[key][sub] || 0) + sample.value;
    }
  }
  return out;
}
