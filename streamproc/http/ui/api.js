// Calls to the streamproc API from the page: the bearer token kept for this tab, JSON replies,
// refusals as errors, and a workflow's events over server-sent events with an event token.

import { EVENT_KINDS, FINAL_KINDS } from "./kinds.js";

const KEY = "streamproc-token";
const lacking = new Set(); // scopes the current token was refused (403)

export class NeedsToken extends Error {}

export class ApiError extends Error {
  constructor(status, body) {
    const message = body && typeof body === "object" && "error" in body ? body.error : String(body);
    super(`${status}: ${message}`);
    this.status = status;
    this.body = body;
    if (status === 403 && body && body.scope) lacking.add(body.scope);
  }
}

export const token = () => sessionStorage.getItem(KEY);

export function useToken(value) {
  lacking.clear();
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** Whether the current token was already refused `scope`: its actions are then disabled. */
export const lacks = (scope) => lacking.has(scope);

export const enc = encodeURIComponent;

/** One API call; the parsed JSON (or text) reply, else NeedsToken (401) or ApiError. */
export async function call(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    throw new NeedsToken(bearer ? "The API refused this token." : "");
  }
  const type = response.headers.get("Content-Type") || "";
  const reply = type.startsWith("application/json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, reply);
  return reply;
}

// EventSource has no catch-all listener: the server lists every kind its streams name.
const FINAL = new Set(FINAL_KINDS);
const RECONNECT_MS = 2000;

/**
 * Follow a workflow's events: `onEvent(kind, data, id)` for each, from its first kept event,
 * until it ends: the server closes the stream after the final event, once no task runs on.
 * An EventSource cannot send the bearer header, so each connection asks for a short-lived
 * event token first; a stream dropped before the final event reconnects with a fresh one
 * (and replays from the start: handlers must take an event twice).  Returns a function that
 * stops.
 */
export function follow(workflowId, onEvent, onTrouble) {
  let source = null;
  let stopped = false;
  let ended = false; // the final event came: the server's close is the end
  let timer = null;
  const path = `/workflows/${enc(workflowId)}`;
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    if (source) source.close();
  };
  const retry = () => {
    if (!stopped) timer = setTimeout(open, RECONNECT_MS);
  };
  const open = async () => {
    if (stopped) return;
    let grant;
    try {
      grant = await call("POST", `${path}/events-token`);
    } catch (error) {
      onTrouble(error);
      if (!(error instanceof NeedsToken)) retry();
      return;
    }
    source = new EventSource(`${path}/events?token=${enc(grant.token)}`);
    for (const kind of EVENT_KINDS) {
      source.addEventListener(kind, (event) => {
        onEvent(kind, JSON.parse(event.data), event.lastEventId);
        if (FINAL.has(kind)) ended = true;
      });
    }
    source.addEventListener("error", (event) => {
      if (event.data) onTrouble(new Error(JSON.parse(event.data).error));
      source.close();
      if (ended && !event.data) stop();
      else retry();
    });
  };
  open();
  return stop;
}
