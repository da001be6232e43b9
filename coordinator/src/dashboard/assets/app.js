// ferry dashboard page: folds the cluster's SSE events (schema v1,
// docs/events.md) into hosts, transfers, runs, LB members and failures,
// and polls /hosts for inventory and agent health. No dependencies.
"use strict";

// ferry_shared::pipeline::Step::as_str, in run order.
const STEPS = ["check", "images", "distribute", "bootstrap", "pki", "init-master",
  "join-master", "lb-sync", "join-worker", "upgrade", "guest", "writeback", "backup"];
const MAX_RUNS = 50, MAX_FAILURES = 200;

const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
let cluster = params.get("cluster") || "";

const S = {
  runs: new Map(),        // op -> run
  order: [],              // ops, oldest first
  hostRun: new Map(),     // host -> op of the latest run that touched it
  hostNow: new Map(),     // host -> {step, state, op}
  transfers: new Map(),   // host|label -> {host, label, sent, total, rate, eta, op}
  lb: new Map(),          // node|member -> {node, member, state, health, check}
  failures: [],
  hosts: [],              // from /hosts
  lastId: "",
};

function q(path) {
  return token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
}

async function getJson(path) {
  const r = await fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function stepOf(msg) {
  const m = /^[a-z-]+/.exec(msg || "");
  return m && STEPS.includes(m[0]) ? m[0] : null;
}

function adviceOf(msg) {
  const i = (msg || "").lastIndexOf("next:");
  return i < 0 ? "" : msg.slice(i + 5).trim();
}

function runFor(ev) {
  let r = S.runs.get(ev.op);
  if (!r) {
    r = { op: ev.op, started: ev.ts_ms, ended: null, outcome: "running", timings: [], hosts: new Map(), steps: new Map() };
    S.runs.set(ev.op, r);
    S.order.push(ev.op);
    while (S.order.length > MAX_RUNS) S.runs.delete(S.order.shift());
  }
  return r;
}

// The run's own failed event (no host) restates a host's failure of the
// same run: that host's entry already shows it, once.
function repeatsHostFailure(ev) {
  if (ev.node) return false;
  return S.failures.some(f => f.op === ev.op && f.host &&
    (ev.message.includes(f.host) || ev.message.includes(f.message)));
}

function foldRun(ev) {
  if (ev.kind === "log") return;
  const r = runFor(ev);
  const terminal = ev.kind === "finished" || ev.kind === "failed";
  const c = ev.counters || {};
  if (!ev.node && terminal && ev.message.startsWith("timings:")) {
    r.ended = ev.ts_ms;
    r.outcome = ev.kind === "finished" ? "succeeded" : "failed";
    r.timings = ev.message.slice(8).split(",").map(p => p.trim().split(" "))
      .filter(p => p.length === 2).map(([s, t]) => [s, parseFloat(t)]);
    return;
  }
  const step = stepOf(ev.message);
  if (ev.kind === "failed" && !repeatsHostFailure(ev)) {
    S.failures.push({ op: ev.op, ts: ev.ts_ms, host: ev.node, step: step || "", message: ev.message, advice: adviceOf(ev.message) });
    if (S.failures.length > MAX_FAILURES) S.failures.shift();
  }
  if (step) {
    const span = r.steps.get(step) || { first: ev.ts_ms, last: ev.ts_ms };
    span.last = Math.max(span.last, ev.ts_ms);
    r.steps.set(step, span);
  }
  if (ev.node && c.content_bytes_total !== undefined && c.content_bytes_sent !== undefined && ev.kind === "progress") {
    const label = ev.message.includes(": ") ? ev.message.slice(0, ev.message.lastIndexOf(": ")) : ev.phase;
    S.transfers.set(ev.node + "|" + label, { host: ev.node, label, sent: c.content_bytes_sent, total: c.content_bytes_total, rate: c.rate_bps || 0, eta: c.eta_ms || 0, op: ev.op });
  }
  if (!ev.node || !step) return;
  let steps = r.hosts.get(ev.node);
  if (!steps) { steps = new Map(); r.hosts.set(ev.node, steps); }
  // Progress alone (check's facts, a master's part in a worker's join)
  // does not make a step of that host.
  if (!steps.has(step) && ev.kind === "progress") return;
  const st = steps.get(step) || { state: "running", seen: [], skipped: false, dur: null };
  if (ev.kind === "started") st.state = "running";
  if (ev.kind === "finished") { st.state = "done"; st.skipped = c.skipped === 1; st.dur = c.duration_ms ?? null; }
  if (ev.kind === "failed") { st.state = "failed"; st.dur = c.duration_ms ?? null; }
  if (st.seen[st.seen.length - 1] !== st.state) st.seen.push(st.state);
  steps.set(step, st);
  S.hostRun.set(ev.node, ev.op);
  S.hostNow.set(ev.node, { step, state: st.state, op: ev.op });
}

function foldLb(ev) {
  const m = /^member (\S+) (\S+)/.exec(ev.message || "");
  if (ev.kind !== "progress" || !m) return;
  const healthy = m[2] === "re-added";
  const state = healthy ? "active" : (m[2] === "drained" ? "draining" : "removed");
  S.lb.set(ev.node + "|" + m[1], { node: ev.node, member: m[1], state, health: healthy ? "healthy" : "unhealthy", check: ev.message });
}

function fold(ev) {
  if (ev.phase === "run") foldRun(ev);
  else if (ev.phase === "load-balancer") foldLb(ev);
  else if (ev.phase === "transfer" && ev.node && ev.kind === "progress" && ev.counters && ev.counters.content_bytes_total !== undefined) {
    const c = ev.counters;
    S.transfers.set(ev.node + "|scp", { host: ev.node, label: "scp", sent: c.content_bytes_sent || 0, total: c.content_bytes_total, rate: c.rate_bps || 0, eta: c.eta_ms || 0, op: ev.op });
  }
}

// ---- rendering ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    // CSSOM, not a style attribute: the page's CSP allows no inline styles.
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, String(v));
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

const mib = b => (b / 1048576).toFixed(1) + " MiB";
const secs = ms => (ms / 1000).toFixed(1) + "s";
const time = ms => new Date(ms).toLocaleTimeString();

function renderHosts() {
  const body = document.querySelector("#hosts tbody");
  const known = new Map(S.hosts.map(h => [h.host, h]));
  for (const h of S.hostNow.keys()) if (!known.has(h)) known.set(h, { host: h, roles: [], health: { state: "unknown", version: "" } });
  body.replaceChildren(...[...known.values()].map(h => {
    const now = S.hostNow.get(h.host) || (h.current ? { step: h.current.step, state: h.current.state } : null);
    const health = h.health || { state: "unknown" };
    const version = health.version || h.installed_version || "";
    const run = S.runs.get(S.hostRun.get(h.host));
    const steps = run ? run.hosts.get(h.host) : null;
    const chips = steps ? STEPS.filter(s => steps.has(s)).map(s => {
      const st = steps.get(s);
      return el("span", { class: "step", "data-host": h.host, "data-step": s, "data-state": st.state, "data-seen": st.seen.join(" "), "data-skipped": st.skipped ? 1 : 0, title: st.dur !== null ? secs(st.dur) : "" }, s);
    }) : [el("span", { class: "muted" }, "no run yet")];
    return el("tr", { class: "host", "data-host": h.host, "data-role": (h.roles || []).join(","), "data-health": health.state, "data-agent-version": version, "data-step": now ? now.step : "", "data-state": now ? now.state : "" },
      el("td", {}, h.host, h.hostname ? el("div", { class: "muted" }, h.hostname) : ""),
      el("td", { class: "roles" }, (h.roles || []).join(", ")),
      el("td", { class: "agent", "data-health": health.state }, el("span", { class: "dot" }), version || "?", " ", el("span", { class: "muted" }, health.state + (health.error ? ": " + health.error : ""))),
      el("td", { class: "current" }, now ? el("span", { class: "state-" + now.state }, now.step + " " + now.state) : ""),
      el("td", { class: "steps" }, ...chips));
  }));
}

function renderTransfers() {
  const box = document.getElementById("transfers");
  if (!S.transfers.size) { box.replaceChildren(el("span", { class: "muted" }, "no transfer seen")); return; }
  box.replaceChildren(...[...S.transfers.entries()].sort().map(([, t]) => {
    const done = t.sent >= t.total, host = t.host;
    return el("div", { class: "transfer", "data-host": host, "data-label": t.label, "data-sent": t.sent, "data-total": t.total, "data-rate": t.rate, "data-eta-ms": t.eta, "data-state": done ? "done" : "running" },
      el("span", {}, host),
      el("progress", { max: Math.max(t.total, 1), value: t.sent }),
      el("span", {}, `${t.label}: ${mib(t.sent)} / ${mib(t.total)}, ${mib(t.rate)}/s, ` + (done ? "done" : "eta " + secs(t.eta))));
  }));
}

function renderRuns() {
  const box = document.getElementById("runs");
  if (!S.order.length) { box.replaceChildren(el("span", { class: "muted" }, "no run yet")); return; }
  box.replaceChildren(...S.order.slice().reverse().map(op => {
    const r = S.runs.get(op);
    let segs = r.timings;
    if (!segs.length) segs = STEPS.filter(s => r.steps.has(s)).map(s => [s, Math.max((r.steps.get(s).last - r.steps.get(s).first) / 1000, 0.05)]);
    const total = segs.reduce((a, [, t]) => a + t, 0) || 1;
    const dur = r.ended ? secs(r.ended - r.started) : "running";
    return el("div", { class: "run", "data-op": op, "data-outcome": r.outcome, "data-started-ms": r.started, "data-ended-ms": r.ended },
      el("div", { class: "head" }, `${time(r.started)} run ${op.slice(0, 8)}: ${r.outcome} (${dur})`),
      el("div", { class: "bar" }, ...segs.map(([s, t]) =>
        el("span", { class: "seg", "data-step": s, "data-secs": t, style: `flex: ${Math.max(t / total, 0.02)}`, title: `${s} ${t.toFixed(2)}s` }, `${s} ${t.toFixed(1)}s`))));
  }));
}

function renderLb() {
  const rows = new Map(S.lb);
  for (const h of S.hosts) {
    const lb = h.health && h.health.lb;
    if (!lb) continue;
    for (const m of lb.members) {
      const key = h.host + "|" + m.addr;
      rows.set(key, { node: h.host, member: m.addr, state: m.state, health: m.state === "active" ? "healthy" : "unhealthy", check: m.last_check });
    }
  }
  const body = document.querySelector("#lb tbody");
  if (!rows.size) { body.replaceChildren(el("tr", {}, el("td", { class: "muted", colspan: 4 }, "no load balancer"))); return; }
  body.replaceChildren(...[...rows.values()].map(m =>
    el("tr", { class: "lb-member", "data-node": m.node, "data-member": m.member, "data-state": m.state, "data-health": m.health },
      el("td", {}, m.node), el("td", {}, el("span", { class: "dot" }), m.member), el("td", {}, m.state), el("td", { class: "muted" }, m.check || ""))));
}

function renderFailures() {
  const box = document.getElementById("failures");
  if (!S.failures.length) { box.replaceChildren(el("span", { class: "muted" }, "none")); return; }
  box.replaceChildren(...S.failures.slice().reverse().map(f =>
    el("div", { class: "failure", "data-host": f.host, "data-step": f.step, "data-op": f.op },
      el("div", { class: "where" }, `${time(f.ts)} ${f.host || "cluster"} · ${f.step || "run"}`),
      el("div", { class: "message" }, f.message),
      f.advice ? el("div", { class: "advice", "data-advice": f.advice }, "next: " + f.advice) : "")));
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    renderHosts(); renderTransfers(); renderRuns(); renderLb(); renderFailures();
    const li = document.getElementById("last-id");
    li.setAttribute("data-event-id", S.lastId);
    li.textContent = S.lastId ? "event " + S.lastId : "";
  }, 50);
}

// ---- feeds ----

function setConn(state) {
  const c = document.getElementById("conn");
  c.setAttribute("data-state", state);
  c.textContent = state;
}

function connect() {
  let url = `/api/clusters/${encodeURIComponent(cluster)}/events`;
  if (S.lastId) url += "?last_event_id=" + encodeURIComponent(S.lastId);
  const es = new EventSource(q(url));
  es.onopen = () => setConn("live");
  es.onmessage = m => {
    S.lastId = m.lastEventId || S.lastId;
    try { fold(JSON.parse(m.data)); } catch (e) { console.warn("bad event", e); }
    render();
  };
  es.addEventListener("lag", () => setConn("live (caught up after lag)"));
  es.onerror = () => {
    // The browser retries with Last-Event-ID while the stream exists; a
    // closed one (e.g. 404 before the cluster appears) is reopened here.
    setConn("reconnecting");
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
  };
}

async function pollHosts() {
  try {
    S.hosts = await getJson(q(`/api/clusters/${encodeURIComponent(cluster)}/hosts`));
    render();
  } catch (e) { /* the cluster may not exist yet */ }
  setTimeout(pollHosts, 2000);
}

async function start() {
  let list = [];
  try { list = await getJson(q("/api/clusters")); } catch (e) { setConn("error: " + e.message); }
  if (!cluster && list.length) cluster = list[0].name;
  const nav = document.getElementById("clusters");
  nav.replaceChildren(...list.map(c => el("a", { href: q("/?cluster=" + encodeURIComponent(c.name)), "data-cluster": c.name }, c.name)));
  const name = document.getElementById("cluster-name");
  name.textContent = cluster ? "· " + cluster : "· no cluster yet";
  name.setAttribute("data-cluster", cluster);
  if (!cluster) { setTimeout(start, 2000); return; }
  render();
  connect();
  pollHosts();
}

start();
