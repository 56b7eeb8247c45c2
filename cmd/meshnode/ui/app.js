// The cluster page of a meshnode agent: one server-sent event stream
// (/v1/ui/stream) brings the cluster ("topology" messages, as GET
// /v1/topology) and the events this agent sees (the tail). No library, no
// build step.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
// A link whose peer has not acknowledged for this long stands out: acks
// come every second or so while events flow, and the reports that bring
// the figure are an interval apart.
const lagTrouble = (t) => Math.max(5000, 2 * t.interval_ms);
const TAIL_MAX = 200;

const $ = (id) => document.getElementById(id);
let topo = null;

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function el(tag, attrs, text, parent) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function short(id) {
  return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-4) : id;
}

function fmtRate(x) {
  if (!x) return "0";
  if (x >= 1000) return (x / 1000).toFixed(1) + "k";
  return x >= 10 ? x.toFixed(0) : x.toFixed(1);
}

// model turns a topology snapshot into nodes and undirected links, each
// link with its worst state over the ends that still report it.
function model(t) {
  const members = new Map(t.members.map((m) => [m.name, m]));
  const reports = new Map(t.nodes.map((n) => [n.node, n]));
  const names = new Set([...members.keys(), ...reports.keys()]);
  const nodes = [...names].sort().map((name) => {
    const m = members.get(name);
    const r = reports.get(name);
    return { name, state: m ? m.state : "unknown", report: r, stale: r ? r.stale : true };
  });
  const gone = (name) => {
    const n = nodes.find((x) => x.name === name);
    return !n || n.state === "dead" || n.state === "left" || n.stale;
  };
  const links = new Map();
  for (const n of nodes) {
    if (!n.report) continue;
    for (const l of n.report.links) {
      if (!l.peer || l.peer === n.name) continue;
      const [a, b] = n.name < l.peer ? [n.name, l.peer] : [l.peer, n.name];
      const key = a + "\u0000" + b;
      if (!links.has(key)) links.set(key, { a, b, ends: [] });
      links.get(key).ends.push({ from: n.name, gone: gone(n.name), ...l });
    }
  }
  for (const l of links.values()) {
    const live = l.ends.filter((e) => !e.gone);
    l.buffered = Math.max(0, ...live.map((e) => e.buffered));
    l.lag = Math.max(0, ...live.map((e) => e.ack_lag_ms));
    if (live.length === 0 || live.some((e) => e.state !== "connected") || gone(l.a) || gone(l.b)) {
      l.state = "down";
    } else if (l.lag >= lagTrouble(t)) {
      l.state = "lagging";
    } else {
      l.state = "ok";
    }
  }
  return { nodes, links: [...links.values()] };
}

function layout(nodes) {
  const cx = 320, cy = 280, r = nodes.length > 1 ? 210 : 0;
  const pos = new Map();
  nodes.forEach((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / nodes.length;
    pos.set(n.name, { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) });
  });
  return pos;
}

function renderGraph(m, origin) {
  const pos = layout(m.nodes);
  const linksG = $("links"), treeG = $("tree"), nodesG = $("nodes-g");
  linksG.replaceChildren();
  treeG.replaceChildren();
  nodesG.replaceChildren();
  $("graph").classList.toggle("tree-mode", !!origin);
  for (const l of m.links) {
    const p = pos.get(l.a), q = pos.get(l.b);
    if (!p || !q) continue;
    const w = 2 + Math.min(6, Math.log10(1 + l.buffered) * 2);
    const line = svg("line", {
      class: "link " + l.state, x1: p.x, y1: p.y, x2: q.x, y2: q.y,
      "stroke-width": w, "data-a": l.a, "data-b": l.b, "data-state": l.state,
    }, linksG);
    const t = svg("title", {}, line);
    t.textContent = `${l.a} — ${l.b}: ${l.state}` + l.ends.map((e) =>
      `\n${e.from}: ${e.state}, ${e.buffered} buffered, ack lag ${e.ack_lag_ms} ms${e.gone ? " (last report)" : ""}`).join("");
    if (l.state !== "ok") {
      const label = svg("text", { class: "link-label", x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 - 4 }, linksG);
      label.textContent = l.state === "down" ? "down" : `${l.buffered} buf` + (l.lag ? ` · ${(l.lag / 1000).toFixed(1)}s` : "");
    }
  }
  if (origin) {
    for (const n of m.nodes) {
      if (!n.report || n.stale) continue;
      for (const l of n.report.links) {
        if (!l.eager || !l.eager.includes(origin)) continue;
        const p = pos.get(n.name), q = pos.get(l.peer);
        if (!p || !q) continue;
        const dx = q.x - p.x, dy = q.y - p.y, d = Math.hypot(dx, dy) || 1, k = 24 / d;
        svg("line", {
          class: "eager-edge", x1: p.x + dx * k, y1: p.y + dy * k, x2: q.x - dx * k, y2: q.y - dy * k,
          "marker-end": "url(#arrow)", "data-from": n.name, "data-to": l.peer,
        }, treeG);
      }
    }
  }
  for (const n of m.nodes) {
    const p = pos.get(n.name);
    const g = svg("g", {
      class: "node" + (n.name === topo.self ? " self" : ""), "data-node": n.name,
      "data-state": n.state, "data-stale": String(n.stale), transform: `translate(${p.x},${p.y})`,
    }, nodesG);
    svg("circle", { r: 20 }, g);
    const label = svg("text", { y: 36 }, g);
    label.textContent = short(n.name);
    const sub = svg("text", { class: "sub", y: 49 }, g);
    const state = n.state === "dead" ? "failed" : n.state;
    sub.textContent = n.report && !n.stale ? `${state} · ${fmtRate(n.report.rates.delivered)}/s` : `${state} · no report`;
    const title = svg("title", {}, g);
    title.textContent = n.name;
  }
}

function spark(hist) {
  const s = svg("svg", { class: "spark", viewBox: "0 0 120 22", preserveAspectRatio: "none" });
  if (!hist || hist.length < 2) return s;
  const top = Math.max(1, ...hist.map((h) => Math.max(h.delivered, h.lost)));
  const pts = (f) => hist.map((h, i) => `${(i * 120) / (hist.length - 1)},${21 - (f(h) / top) * 20}`).join(" ");
  svg("polyline", { class: "d", points: pts((h) => h.delivered) }, s);
  if (hist.some((h) => h.lost > 0)) svg("polyline", { class: "l", points: pts((h) => h.lost) }, s);
  return s;
}

function renderTables(m) {
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  for (const n of m.nodes) {
    const r = n.report;
    const st = r ? r.stats : null;
    const lost = st ? st.overflowed + st.handler_dropped + st.skipped + st.expired : 0;
    const tr = el("tr", { "data-node": n.name, "data-trouble": String(lost > 0 || n.state !== "alive") }, null, body);
    el("td", { title: n.name }, short(n.name), tr);
    el("td", { class: "state-" + n.state }, (n.state === "dead" ? "failed" : n.state) + (n.stale && n.state === "alive" ? " (no report)" : ""), tr);
    const live = r && !n.stale;
    el("td", { class: "num" }, live ? fmtRate(r.rates.delivered) : "–", tr);
    el("td", { class: "num" }, live ? fmtRate(r.rates.forwarded) : "–", tr);
    el("td", { class: "num", title: st ? `overflow ${st.overflowed}, handler dropped ${st.handler_dropped}, skipped ${st.skipped}, expired ${st.expired}` : "" }, st ? String(lost) : "–", tr);
    el("td", { class: "num" }, st ? String(st.slow_consumers) + (st.held ? " (holding)" : "") : "–", tr);
    el("td", {}, null, tr).appendChild(spark(r ? r.history : null));
  }
  const lb = $("links-table").tBodies[0];
  lb.replaceChildren();
  for (const l of m.links) {
    const tr = el("tr", { "data-a": l.a, "data-b": l.b, "data-trouble": String(l.state !== "ok") }, null, lb);
    el("td", {}, `${short(l.a)} — ${short(l.b)}`, tr);
    el("td", {}, l.state, tr);
    el("td", { class: "num" }, String(l.buffered), tr);
    el("td", { class: "num" }, l.lag ? (l.lag / 1000).toFixed(1) + " s" : "0", tr);
  }
  const bad = m.links.filter((l) => l.state !== "ok").length;
  $("summary").textContent = `${m.nodes.length} members, ${m.links.length} links` + (bad ? `, ${bad} in trouble` : "");
  $("summary").dataset.members = m.nodes.length;
  $("summary").dataset.links = m.links.length;
}

function renderOrigins(m) {
  const sel = $("origin");
  const cur = sel.value;
  const want = ["", ...m.nodes.map((n) => n.name)];
  const have = [...sel.options].map((o) => o.value);
  if (want.join("\u0000") !== have.join("\u0000")) {
    sel.replaceChildren();
    for (const v of want) el("option", { value: v }, v ? short(v) : "(links only)", sel);
    sel.value = want.includes(cur) ? cur : "";
  }
}

function render() {
  if (!topo) return;
  $("self").textContent = topo.self;
  $("lag-key").textContent = `lagging (unacknowledged ≥ ${lagTrouble(topo) / 1000}s)`;
  const m = model(topo);
  renderOrigins(m);
  renderGraph(m, $("origin").value);
  renderTables(m);
}

function applyFilter(li) {
  const f = $("filter").value.trim();
  li.hidden = f !== "" && !(li.dataset.name || "").includes(f);
}

function addTail(ev) {
  const list = $("tail");
  const li = el("li", {}, null, null);
  if (ev.dropped !== undefined) {
    li.className = "dropped";
    li.textContent = `… ${ev.dropped} events left out (this page fell behind)`;
  } else {
    li.dataset.name = ev.event;
    li.dataset.origin = ev.origin;
    if (ev.local) li.className = "local";
    el("span", { class: "time" }, new Date().toLocaleTimeString() + " ", li);
    el("span", { class: "name" }, ev.event, li);
    el("span", { class: "origin" }, " from " + ev.origin, li);
    el("span", { class: "args" }, " " + JSON.stringify(ev.args), li);
  }
  applyFilter(li);
  list.prepend(li);
  while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
}

// parseArgs reads the emit form's args as meshnode emit does: each
// space-separated word is a JSON value if it parses, else a string.
function parseArgs(text) {
  const words = text.match(/"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|\S+/g) || [];
  return words.map((w) => {
    try {
      return JSON.parse(w);
    } catch {
      return w;
    }
  });
}

async function emit(e) {
  e.preventDefault();
  const status = $("emit-status");
  const body = { event: $("emit-name").value.trim(), args: parseArgs($("emit-args").value) };
  status.textContent = "sending…";
  try {
    const resp = await fetch("/v1/emit", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const out = await resp.json().catch(() => ({}));
    status.textContent = resp.ok ? `emitted ${body.event}` : `refused: ${out.error || resp.status}`;
    status.dataset.ok = String(resp.ok);
  } catch (err) {
    status.textContent = "not sent: " + err.message;
    status.dataset.ok = "false";
  }
}

function connect() {
  const conn = $("conn");
  const es = new EventSource("/v1/ui/stream");
  es.addEventListener("open", () => {
    conn.dataset.state = "live";
    conn.textContent = "live";
  });
  es.addEventListener("error", () => {
    conn.dataset.state = "lost";
    conn.textContent = "reconnecting…";
  });
  es.addEventListener("topology", (e) => {
    topo = JSON.parse(e.data);
    render();
  });
  es.addEventListener("dropped", (e) => addTail(JSON.parse(e.data)));
  es.addEventListener("message", (e) => addTail(JSON.parse(e.data)));
}

document.addEventListener("DOMContentLoaded", () => {
  $("origin").addEventListener("change", render);
  $("filter").addEventListener("input", () => {
    for (const li of $("tail").children) applyFilter(li);
    $("tail-note").textContent = $("filter").value ? "(filtered)" : "";
  });
  $("emit-form").addEventListener("submit", emit);
  connect();
});
