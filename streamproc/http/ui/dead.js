// Dead letters (#/dead, #/dead/<agent>): each agent's entries with their reason, every field
// on demand, and requeue or purge, each with a confirmation step (admin scope).

import { ApiError, call, enc } from "./api.js";
import { cell, confirmed, el, notice, pre, table, when } from "./dom.js";

export async function deadPage(main, view, only) {
  main.append(el("h1", {}, only ? `Dead letters of ${only}` : "Dead letters"));
  const agents = only ? [only] : (await call("GET", "/agents")).filter((a) => a.dead_letters > 0).map((a) => a.agent);
  if (!agents.length) {
    main.append(notice("No dead letters."));
    return;
  }
  for (const agent of agents) {
    const section = el("section", { class: "dead-agent", "data-agent": agent }, el("h2", {}, agent));
    main.append(section);
    let letters;
    try {
      letters = await call("GET", `/dead/${enc(agent)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        section.append(notice("Dead letters need the admin scope, which this token lacks.", "error"));
        return;
      }
      throw error;
    }
    if (!letters.length) {
      section.append(notice("None."));
      continue;
    }
    const listed = deadTable(agent, letters);
    section.append(purgeAll(agent, letters, listed), listed);
  }
}

/** Purge every entry listed (only those: the ids below the newest one shown plus one). */
function purgeAll(agent, letters, listed) {
  const [ms, seq] = letters.at(-1).id.split("-");
  const before = `${ms}-${BigInt(seq) + 1n}`;
  return el(
    "p",
    { class: "purge-all" },
    confirmed(
      "Purge all",
      `purge the ${letters.length} entries listed`,
      async () => {
        const done = await call("POST", `/dead/${enc(agent)}/purge?before=${enc(before)}`);
        listed.remove();
        return `purged ${done.purged} for good`;
      },
      "admin",
    ),
  );
}

function deadTable(agent, letters) {
  const rows = [];
  for (const letter of letters) {
    const fields = el("tr", { class: "dead-fields", hidden: true }, el("td", { colspan: 8 }));
    const show = el("button", { type: "button" }, "Details");
    show.addEventListener("click", async () => {
      fields.hidden = !fields.hidden;
      if (!fields.hidden) {
        const entry = await call("GET", `/dead/${enc(agent)}/${enc(letter.id)}`).catch((e) => ({ error: e.message }));
        fields.firstChild.replaceChildren(pre(entry));
      }
    });
    const requeue = confirmed(
      "Requeue",
      "requeue",
      async () => {
        try {
          const done = await call("POST", `/dead/${enc(agent)}/${enc(letter.id)}/requeue`);
          purge.remove(); // the entry is gone
          return `requeued: ${done.workflow} resumes`;
        } catch (error) {
          if (error instanceof ApiError && error.status === 409) error.message = error.body.reason || error.message;
          throw error;
        }
      },
      "admin",
    );
    const purge = confirmed(
      "Purge",
      "purge this entry",
      async () => {
        await call("DELETE", `/dead/${enc(agent)}/${enc(letter.id)}`);
        requeue.remove(); // nothing left to run again
        return "purged: deleted for good";
      },
      "admin",
    );
    rows.push(
      el(
        "tr",
        { "data-entry": letter.id },
        cell(letter.id),
        cell(letter.workflow ? el("a", { href: `#/workflows/${enc(letter.workflow)}` }, letter.workflow) : ""),
        cell(letter.task || ""),
        cell(String(letter.attempt ?? "")),
        cell(String(letter.deliveries ?? "")),
        cell(el("span", { class: "reason" }, letter.reason)),
        cell(when(letter.at)),
        cell(show, requeue, purge),
      ),
      fields,
    );
  }
  return table(["entry", "workflow", "task", "attempt", "deliveries", "reason", "when", ""], rows, { class: "dead-table" });
}
