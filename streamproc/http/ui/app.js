// The dashboard: hash routes to pages, the token prompt, and each page's lifetime (its
// timers and event streams end when another page opens).

import { NeedsToken, token, useToken } from "./api.js";
import { notice } from "./dom.js";
import { agentsPage } from "./agents.js";
import { deadPage } from "./dead.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { searchPage } from "./search.js";

const ROUTES = [
  [/^#?\/?$/, "runs", runsPage],
  [/^#\/workflows\/([^/]+)$/, "runs", runPage],
  [/^#\/agents$/, "agents", agentsPage],
  [/^#\/dead(?:\/([^/]+))?$/, "dead", deadPage],
  [/^#\/search$/, "search", searchPage],
];

const main = document.getElementById("main");
const login = document.getElementById("login");
const forget = document.getElementById("forget");
let view = null;

/** What a page gets: where it draws, and its lifetime. */
class View {
  constructor() {
    this.closed = false;
    this.closers = [];
  }
  onClose(fn) {
    this.closers.push(fn);
  }
  close() {
    this.closed = true;
    for (const fn of this.closers) fn();
  }
  /** A call failed: a missing or refused token asks for one, anything else is shown. */
  fail(error) {
    if (this.closed) return;
    if (error instanceof NeedsToken) {
      this.close();
      askToken(error.message);
    } else {
      console.error(error);
      main.prepend(notice(error.message, "error"));
    }
  }
}

function askToken(reason) {
  main.replaceChildren();
  login.hidden = false;
  document.getElementById("login-reason").textContent = reason;
  document.getElementById("token").focus();
}

async function show() {
  if (view) view.close();
  view = new View();
  login.hidden = true;
  forget.hidden = !token();
  main.replaceChildren();
  const hash = location.hash || "#/";
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", route !== undefined && link.dataset.page === route[1]);
  }
  if (!route) {
    main.appendChild(notice(`No page at ${hash}.`, "error"));
    return;
  }
  const params = hash.match(route[0]).slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
  try {
    await route[2](main, view, ...params);
  } catch (error) {
    view.fail(error);
  }
}

login.addEventListener("submit", (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  useToken(field.value.trim());
  field.value = "";
  show();
});
forget.addEventListener("click", () => {
  useToken(null);
  show();
});
window.addEventListener("hashchange", show);
show();
