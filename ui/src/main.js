// NetProbe's web UI: the live service map of GET /api/v1/topology (cytoscape), the node
// list and the edge table (the keyboard's way to the map), the details of a selected node
// or edge (its flows, connections, L7 endpoints, events and anomalies from the same API),
// the events and anomalies timeline, heatmaps and the packet path. Bundled by esbuild at build time, embedded in the agent,
// no network access beyond the agent. window.netprobe exposes the page's data model to
// tests and to curious users.
import cytoscape from "cytoscape";

const POLL_MS = 1000;
const api = (path) => `../api/v1/${path}`;
const $ = (id) => document.getElementById(id);

const state = { window: "5m", group_by: "host", namespace: "", protocol: "", colour: "errors", paused: false,
                selected: null };
const model = { state, data: null, updates: 0, errors: 0, lastError: "", cy: null, layouts: 0,
                // edge id -> { at: Date.now() when the page first drew it, via: "stream" | "poll" }
                firstSeen: {}, via: "poll" };
window.netprobe = model;

function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
}
const fmtRate = (n) => `${fmtBytes(n)}/s`;
const fmtSecs = (s) => (s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`);
const pct = (x) => `${(x * 100).toFixed(1)}%`;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

// green (0) -> red (1)
function ramp(x) {
  const t = Math.max(0, Math.min(1, x));
  const r = Math.round(40 + 200 * t), g = Math.round(160 - 120 * t), b = 60;
  return `rgb(${r},${g},${b})`;
}

function edgeColour(e) {
  if (state.colour === "rtt") {
    if (!e.rtt_ms) return "#8c959f";
    return ramp(Math.log10(1 + e.rtt_ms) / 3);  // 0 ms green .. ~1 s red
  }
  if (e.requests) return ramp(e.error_rate * 4);  // 25% errors and more: full red
  return e.connections_failed ? "#bf8700" : "#8c959f";
}

const cy = cytoscape({
  container: $("graph"),
  minZoom: 0.05,
  maxZoom: 4,
  wheelSensitivity: 0.3,
  style: [
    { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
                                "background-color": "data(colour)", width: "data(size)", height: "data(size)",
                                "border-width": 1, "border-color": "#57606a", color: "#1b1f24",
                                "text-wrap": "ellipsis", "text-max-width": 160 } },
    { selector: "node.failing", style: { "border-width": 3, "border-color": "#cf222e" } },
    { selector: "node.event", style: { "border-width": 4, "border-style": "double", "border-color": "#bf8700" } },
    { selector: "node.anomaly", style: { "border-width": 3, "border-style": "dashed", "border-color": "#8250df" } },
    { selector: "node.event.anomaly", style: { "border-width": 5, "border-style": "double", "border-color": "#8250df" } },
    { selector: "node.event-focus", style: { "border-width": 6, "border-style": "double", "border-color": "#cf222e" } },
    { selector: "edge", style: { width: "data(width)", "line-color": "data(colour)", "target-arrow-color": "data(colour)",
                                "target-arrow-shape": "triangle", "curve-style": "straight", "arrow-scale": 0.8,
                                opacity: 0.85 } },
    { selector: "edge.failed", style: { "line-style": "dashed" } },
    { selector: ":selected", style: { "overlay-color": "#0969da", "overlay-opacity": 0.25, "overlay-padding": 4 } },
  ],
});
model.cy = cy;

function nodeColour(n) {
  return { workload: "#54aeff", pod: "#54aeff", service: "#0969da", namespace: "#b392f0", segment: "#b392f0", container: "#79c0ff", process: "#7ee787", group: "#fff8c5", external: "#eaeef2", host: n.server ? "#ffd8b5" : "#d0d7de" }[n.kind] || "#d0d7de";
}

// The answer's object of an element (its figures, for the details pane) is kept in a map
// by id, beside the graph; the element's data (what the style reads) and classes are set
// only when they change: setting them (or a scratch value) restyles and redraws the
// element, which at 2000 edges costs more than everything else of an update.
const answerOf = new Map();  // element id -> the node or edge of the latest answer
const STYLE_KEYS = ["label", "colour", "size", "width"];
function styleChanged(el, d) {
  return STYLE_KEYS.some((k) => d[k] !== undefined && el.data(k) !== d[k]);
}

function render(data) {
  model.data = data;
  const maxRate = Math.max(1, ...data.edges.map((e) => e.bytes_per_second));
  const wanted = new Set();
  let added = 0;
  const upsert = (group, d, obj, cls) => {
    const el = cy.getElementById(d.id);
    if (el.empty()) {
      cy.add({ group, data: d, classes: cls });
      if (group === "edges" && !model.firstSeen[d.id]) model.firstSeen[d.id] = { at: Date.now(), via: model.via };
      answerOf.set(d.id, obj);
      added++;
      return;
    }
    answerOf.set(d.id, obj);
    if (styleChanged(el, d)) el.data(d);
    for (const c of ["failing", "failed"]) {
      if (el.hasClass(c) !== (cls === c)) el.toggleClass(c, cls === c);
    }
  };
  cy.batch(() => {
    const failing = new Set();
    for (const e of data.edges) {
      if ((e.requests && e.error_rate > 0) || e.connections_failed) failing.add(e.target);
    }
    for (const n of data.nodes) {
      wanted.add(n.id);
      const d = { id: n.id, label: n.name, colour: nodeColour(n),
                  size: Math.round(2 * (18 + Math.min(30, Math.log2(1 + (n.bytes_sent + n.bytes_received) / 1024) * 2))) / 2 };
      upsert("nodes", d, n, failing.has(n.id) ? "failing" : "");
    }
    for (const e of data.edges) {
      wanted.add(e.id);
      const d = { id: e.id, source: e.source, target: e.target, colour: edgeColour(e),
                  width: Math.round(4 * (1 + 11 * Math.log1p(e.bytes_per_second) / Math.log1p(maxRate))) / 4 };
      upsert("edges", d, e, e.connections_failed > 0 ? "failed" : "");
    }
    cy.elements().forEach((el) => { if (!wanted.has(el.id())) { cy.remove(el); added++; } });
    for (const id of answerOf.keys()) { if (!wanted.has(id)) answerOf.delete(id); }
  });
  if (added) {
    const big = data.nodes.length > 150;
    // Parallel edges (one per server port: a scan draws dozens) are drawn on one line and
    // count once for the layout, which would otherwise pull their ends onto each other.
    const seen = new Set();
    const skeleton = cy.nodes().union(cy.edges().filter((e) => {
      const k = `${e.data("source")}\u0000${e.data("target")}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    }));
    skeleton.layout(big ? { name: "concentric", animate: false, minNodeSpacing: 8,
                      concentric: (n) => n.degree(), levelWidth: () => 4 }
                  : { name: "cose", animate: false, nodeRepulsion: 9000, idealEdgeLength: 90, randomize: false }).run();
    model.layouts++;
  }
  renderTable(data);
  renderNodeList(data);
  renderMatrix(data);
  if (state.selected) showSelected();
  $("status").textContent = `${data.nodes.length} nodes, ${data.edges.length} edges over ${data.window_seconds / 60} min` +
    `${data.truncated ? " (the busiest only)" : ""} - updated ${new Date().toLocaleTimeString()}`;
  $("status").classList.remove("error");
}

const TABLE_ROWS = 200;  // the busiest edges (the answer is sorted by bytes); the map shows all

function renderTable(data) {
  const body = $("edges").tBodies[0];
  const rows = data.edges.slice(0, TABLE_ROWS).map((e) => {
    const sel = state.selected === e.id ? " selected" : "";
    return `<tr tabindex="0" data-id="${esc(e.id)}" class="${sel}" aria-selected="${!!sel}">` +
      `<td>${esc(nameOf(e.source))}</td><td>${esc(nameOf(e.target))}</td><td class="num">${e.port}</td>` +
      `<td>${esc(e.protocol || e.transport)}</td><td class="num">${fmtRate(e.bytes_per_second)}</td>` +
      `<td class="num">${e.connections_opened}${e.connections_failed ? ` <span class="bad">(${e.connections_failed} failed)</span>` : ""}</td>` +
      `<td class="num">${e.requests ? e.requests_per_second.toFixed(1) : ""}</td>` +
      `<td class="num${e.errors ? " bad" : ""}">${e.requests ? pct(e.error_rate) : ""}</td>` +
      `<td class="num">${e.requests ? fmtSecs(e.p99_seconds) : ""}</td><td class="num">${e.rtt_ms ? e.rtt_ms.toFixed(2) + " ms" : ""}</td></tr>`;
  });
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
  body.innerHTML = rows.join("");
  if (focused) { const r = body.querySelector(`tr[data-id="${CSS.escape(focused)}"]`); if (r) r.focus(); }
  $("edge-count").textContent = data.edges.length > TABLE_ROWS
    ? `(the ${TABLE_ROWS} busiest of ${data.edges.length})` : `(${data.edges.length})`;
}

// The node list: every node of the map as a row, the keyboard's way to the nodes (one Tab
// stop: the current row has tabindex 0, the others -1; arrows, Home/End move, Enter or
// Space selects and opens the details, as a click on the node does). Busiest first.
const NODE_ROWS = 500;
let nodeCursor = null;  // the node id of the row that takes the Tab stop

function renderNodeList(data) {
  const body = $("nodes").tBodies[0];
  const nodes = [...data.nodes].sort((a, b) => (b.bytes_sent + b.bytes_received) - (a.bytes_sent + a.bytes_received) ||
                                                (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, NODE_ROWS);
  if (!nodes.some((n) => n.id === nodeCursor)) nodeCursor = nodes.length ? nodes[0].id : null;
  const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.dataset.id : null;
  body.innerHTML = nodes.map((n) => {
    const sel = state.selected === n.id;
    const badges = [(model.badges.event || []).includes(n.id) ? "event" : "", (model.badges.anomaly || []).includes(n.id) ? "anomaly" : ""]
      .filter(Boolean).join(", ");
    return `<tr tabindex="${n.id === nodeCursor ? 0 : -1}" data-id="${esc(n.id)}" class="${sel ? "selected" : ""}" aria-selected="${sel}">` +
      `<td>${esc(n.name)}</td><td>${esc(n.kind)}</td><td class="num">${fmtBytes(n.bytes_sent)}</td><td class="num">${fmtBytes(n.bytes_received)}</td>` +
      `<td>${badges}</td></tr>`;
  }).join("");
  if (focused) { const r = body.querySelector(`tr[data-id="${CSS.escape(focused)}"]`); if (r) r.focus(); }
  $("node-count").textContent = data.nodes.length > NODE_ROWS ? `(the ${NODE_ROWS} busiest of ${data.nodes.length})` : `(${data.nodes.length})`;
}

function moveNodeCursor(tr) {
  if (!tr) return;
  for (const r of $("nodes").tBodies[0].rows) r.tabIndex = r === tr ? 0 : -1;
  nodeCursor = tr.dataset.id;
  tr.focus();
}

$("nodes").tBodies[0].addEventListener("click", (ev) => { const tr = ev.target.closest("tr"); if (tr) { moveNodeCursor(tr); select(tr.dataset.id); } });
$("nodes").tBodies[0].addEventListener("keydown", (ev) => {
  const tr = ev.target.closest("tr");
  if (!tr) return;
  const rows = tr.parentElement.rows;
  const go = { ArrowDown: tr.nextElementSibling, ArrowUp: tr.previousElementSibling, Home: rows[0], End: rows[rows.length - 1] }[ev.key];
  if (go !== undefined) { ev.preventDefault(); moveNodeCursor(go); return; }
  if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(tr.dataset.id); }
});

// Heatmaps: the client x server matrix of the current answer, and interface x time from
// /api/v1/interfaces samples the page keeps (one per refresh, the last 120).
const HISTORY = 120;
const ifHistory = new Map();  // name -> [bytes/s, ...] oldest first
model.heat = { matrix: [], interfaces: ifHistory };

function heatColour(x) {  // 0..1 -> white .. dark blue
  const t = Math.max(0, Math.min(1, x));
  return `rgb(${Math.round(255 - 200 * t)},${Math.round(255 - 150 * t)},${Math.round(255 - 40 * t)})`;
}

function renderMatrix(data) {
  const byClient = new Map(), byServer = new Map(), cell = new Map();
  for (const e of data.edges) {
    byClient.set(e.source, (byClient.get(e.source) || 0) + e.bytes_per_second);
    byServer.set(e.target, (byServer.get(e.target) || 0) + e.bytes_per_second);
    const k = `${e.source}\u0000${e.target}`;
    cell.set(k, (cell.get(k) || 0) + e.bytes_per_second);
  }
  const top = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30).map(([id]) => id);
  const rows = top(byClient), cols = top(byServer);
  const max = Math.max(1, ...cell.values());
  model.heat.matrix = [];
  let html = `<table><thead><tr><th></th>${cols.map((c) => `<th scope="col" title="${esc(nameOf(c))}">${esc(nameOf(c))}</th>`).join("")}</tr></thead><tbody>`;
  for (const r of rows) {
    html += `<tr><th scope="row" title="${esc(nameOf(r))}">${esc(nameOf(r))}</th>`;
    for (const c of cols) {
      const v = cell.get(`${r}\u0000${c}`) || 0;
      if (v) model.heat.matrix.push([r, c, v]);
      html += `<td class="cell" style="background:${v ? heatColour(Math.log1p(v) / Math.log1p(max)) : "#f6f8fa"}" title="${esc(nameOf(r))} -> ${esc(nameOf(c))}: ${fmtRate(v)}"></td>`;
    }
    html += "</tr>";
  }
  $("heat-matrix").innerHTML = rows.length ? `${html}</tbody></table>` : "<p class=\"hint\">No traffic in the window.</p>";
}

async function sampleInterfaces() {
  try {
    const r = await fetch(api("interfaces"));
    if (!r.ok) return;
    const doc = await r.json();
    for (const i of doc.interfaces) {
      const h = ifHistory.get(i.name) || [];
      h.push(i.ingress_bytes_rate + i.egress_bytes_rate);
      if (h.length > HISTORY) h.shift();
      ifHistory.set(i.name, h);
    }
  } catch (err) { /* the topology's status line reports the agent being away */ }
  const names = [...ifHistory.keys()].sort().slice(0, 16);
  const cv = $("heat-time"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  const rowH = Math.max(4, Math.floor(cv.height / Math.max(1, names.length)));
  const colW = cv.width / HISTORY;
  const max = Math.max(1, ...names.flatMap((n) => ifHistory.get(n)));
  names.forEach((n, row) => {
    const h = ifHistory.get(n);
    h.forEach((v, i) => {
      ctx.fillStyle = heatColour(Math.log1p(v) / Math.log1p(max));
      ctx.fillRect((HISTORY - h.length + i) * colW, row * rowH, Math.ceil(colW), rowH - 1);
    });
  });
  $("heat-time-labels").innerHTML = names.map((n, row) => `<span>${row + 1}. ${esc(n)}</span>`).join("");
}

// Events: the security events of the window (GET /api/v1/events) and the anomalies of the
// models (GET /api/v1/anomalies) on one timeline and in one list; the nodes an active event
// involves carry a badge (a double border), those of an open anomaly a dashed violet one
// (both: a violet double border); choosing an entry (click or Enter) highlights its nodes.
model.events = [];
model.anomalies = [];
model.badges = { event: [], anomaly: [] };
let eventFocus = null;  // "event:<id>" | "anomaly:<id>"

function nodesOfAddress(ip) {
  if (!model.data || !ip) return [];
  return model.data.nodes.filter((n) => n.ips.includes(ip)).map((n) => n.id);
}

function eventNodes(ev) {
  const ips = [ev.src_ip, ev.dst_ip, ...(ev.targets || [])].filter(Boolean);
  return [...new Set(ips.flatMap(nodesOfAddress))];
}

// The nodes of an entity as the anomaly models name it: "namespace/workload", else
// "namespace/pod", else the address (docs/anomaly.md).
function nodesOfEntity(name) {
  if (!model.data || !name) return [];
  return model.data.nodes.filter((n) => n.id === name || n.ips.includes(name) ||
    (n.namespace && (`${n.namespace}/${n.workload}` === name || `${n.namespace}/${n.pod}` === name))).map((n) => n.id);
}

// An anomaly's subject: an entity (behaviour), or a series key: edge/<client>-><server>:<port>/<transport>/<figure>,
// service/<server>:<port>/<figure>, iface/<name>/<figure>, node/<figure> (no graph node).
function anomalyNodes(a) {
  const s = a.subject || "";
  let ends = [];
  if (a.scope === "entity") ends = [s];
  else if (s.startsWith("edge/")) {
    const m = /^edge\/(.+)->(.+):\d+\/[a-z]+\/[^/]+$/.exec(s);
    if (m) ends = [m[1], m[2]];
  } else if (s.startsWith("service/")) {
    const m = /^service\/(.+):\d+\/[^/]+$/.exec(s);
    if (m) ends = [m[1]];
  }
  return [...new Set(ends.flatMap(nodesOfEntity))];
}

// A behaviour anomaly is one interval's deviation (never "open"): its nodes keep the badge
// for two minutes after it, an open metric anomaly's while it is open.
const ANOMALY_BADGE_MS = 120000;
const entryKey = (kind, id) => `${kind}:${id}`;
const SEV_COLOUR = { critical: "#cf222e", high: "#cf222e", medium: "#bf8700", low: "#54aeff", info: "#8c959f" };

// One list of the events and anomalies of the window, newest first: { kind, id, from, to, label, colour, nodes, active }
function timelineEntries(now) {
  const ev = model.events.map((e) => ({
    kind: "event", id: e.id, from: Date.parse(e.first_seen || e.detected_at), to: e.ended_at ? Date.parse(e.ended_at) : now,
    at: Date.parse(e.detected_at), colour: SEV_COLOUR[e.severity] || "#8c959f", active: !!e.active, nodes: eventNodes(e),
    html: `<span class="sev-${esc(e.severity)}">${esc(e.severity)}</span> ${esc(e.type)} ` +
          `${esc(e.src_ip || "")}${e.dst_ip ? ` &rarr; ${esc(e.dst_ip)}` : ""}${e.active ? " (active)" : ""}`,
    title: `${e.type} ${e.src_ip || ""}` }));
  const an = model.anomalies.map((a) => ({
    kind: "anomaly", id: a.id, from: a.first_unix * 1000, to: a.open ? now : a.last_unix * 1000, at: a.first_unix * 1000,
    colour: "#8250df", active: !!a.open, nodes: anomalyNodes(a),
    html: `<span class="anomaly-tag">anomaly</span> ${esc(a.kind)} ${esc(a.subject)}${a.open ? " (open)" : ""}: ` +
          `${esc((a.features || []).map((f) => f.name).join(", "))} <span class="hint">score ${Number(a.score).toFixed(1)}</span>`,
    title: `anomaly ${a.subject}` }));
  return [...ev, ...an].sort((x, y) => y.at - x.at);
}

async function loadEvents() {
  const windowSecs = model.data ? model.data.window_seconds : 300;
  const since = Math.floor(Date.now() / 1000 - windowSecs);
  try {
    const [r, ra] = await Promise.all([fetch(api(`events?since=${since}&limit=200`)), fetch(api("anomalies?limit=200"))]);
    if (!r.ok) return;
    model.events = (await r.json()).events || [];
    // anomalies of the window (the API answers the newest; an older one that is still open counts)
    const adoc = ra.ok ? await ra.json() : { events: [] };
    model.anomalies = (adoc.events || []).filter((a) => a.open || a.last_unix >= since);
  } catch (err) { return; }
  const now = Date.now(), from = now - windowSecs * 1000;
  const entries = timelineEntries(now);
  model.timeline = entries.map(({ kind, id, nodes, active }) => ({ kind, id, nodes, active }));
  $("timeline").innerHTML = entries.map((e) => {
    const a = Math.max(from, e.from), b = Math.max(a, e.to);
    const left = ((a - from) / (now - from)) * 100, width = Math.max(0.4, ((b - a) / (now - from)) * 100);
    return `<span class="mark${e.kind === "anomaly" ? " anomaly" : ""}" data-kind="${e.kind}" data-id="${e.id}" style="left:${left.toFixed(2)}%;width:${width.toFixed(2)}%;background:${e.colour}" title="${esc(e.title)}"></span>`;
  }).join("");
  $("event-count").textContent = `(${model.events.length} events, ${model.anomalies.length} anomalies in the window)`;
  $("events").innerHTML = entries.map((e) =>
    `<li tabindex="0" data-kind="${e.kind}" data-id="${e.id}" class="${eventFocus === entryKey(e.kind, e.id) ? "selected" : ""}">` +
    `<time>${esc(new Date(e.at).toLocaleTimeString())}</time> ${e.html}</li>`).join("");
  const badged = new Set(entries.filter((e) => e.kind === "event" && e.active).flatMap((e) => e.nodes));
  const anomalous = new Set(entries.filter((e) => e.kind === "anomaly" && (e.active || now - e.to <= ANOMALY_BADGE_MS))
                                   .flatMap((e) => e.nodes));
  const focused = entries.find((e) => entryKey(e.kind, e.id) === eventFocus);
  const focusNodes = new Set(focused ? focused.nodes : []);
  // Only the nodes whose badge changes (a class change restyles the element).
  cy.batch(() => cy.nodes().forEach((n) => {
    for (const [c, want] of [["event", badged.has(n.id())], ["anomaly", anomalous.has(n.id())],
                             ["event-focus", focusNodes.has(n.id())]]) {
      if (n.hasClass(c) !== want) n.toggleClass(c, want);
    }
  }));
  model.badges = { event: [...badged], anomaly: [...anomalous] };
  model.eventNodes = [...focusNodes];
  if (model.data) renderNodeList(model.data);
}

function focusEvent(li) {
  const key = entryKey(li.dataset.kind, li.dataset.id);
  eventFocus = eventFocus === key ? null : key;
  loadEvents();
}
$("events").addEventListener("click", (ev) => { const li = ev.target.closest("li"); if (li) focusEvent(li); });
$("events").addEventListener("keydown", (ev) => {
  const li = ev.target.closest("li");
  if (li && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); focusEvent(li); }
});

function nameOf(id) {
  const n = model.data && model.data.nodes.find((x) => x.id === id);
  return n ? n.name : id;
}

function dl(pairs) {
  return `<dl>${pairs.filter(([, v]) => v !== undefined && v !== "").map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("")}</dl>`;
}

async function getJson(path) {
  try {
    const r = await fetch(api(path));
    return r.ok ? await r.json() : null;
  } catch (err) { return null; }
}

function flowsTable(flows) {
  return `<h3>Flows (${flows.length})</h3><table id="details-flows" class="edge-flows"><thead><tr><th>from</th><th>to</th><th>if</th><th class="num">bytes</th><th class="num">packets</th><th><span class="sr-only">packet path</span></th></tr></thead><tbody>` +
    flows.map((f) => `<tr data-src="${esc(f.src_ip)}" data-dst="${esc(f.dst_ip)}" data-sport="${f.src_port || 0}" data-dport="${f.dst_port || 0}">` +
      `<td>${esc(f.src_ip)}:${f.src_port}</td><td>${esc(f.dst_ip)}:${f.dst_port}</td><td title="${esc(f.interface)} ${esc(f.direction)}">${esc(f.interface)} ${f.direction === "ingress" ? "in" : f.direction === "egress" ? "out" : esc(f.direction)}</td><td class="num">${fmtBytes(f.bytes)}</td><td class="num">${f.packets}</td>` +
      `<td><button type="button" class="trace" data-src="${esc(f.src_ip)}" data-dst="${esc(f.dst_ip)}" data-sport="${f.src_port || ""}" data-dport="${f.dst_port || ""}" data-proto="${esc(f.protocol || "")}" aria-label="trace the path of ${esc(f.src_ip)}:${f.src_port} to ${esc(f.dst_ip)}:${f.dst_port}">trace</button></td></tr>`).join("") +
    "</tbody></table>";
}

// TCP connections of the stack monitor (both ends' sockets when both are on the node: an
// active and a passive record of one connection).
function connectionsTable(conns) {
  const st = (c) => (c.failed ? "failed" : c.open ? (c.state || "open").toLowerCase() : "closed");
  return `<h3>Connections (${conns.length})</h3><table id="details-connections"><thead><tr><th>local</th><th>remote</th><th>side</th><th>state</th><th class="num">sent</th><th class="num">received</th><th>process</th></tr></thead><tbody>` +
    conns.map((c) => `<tr data-cookie="${c.cookie}" data-src="${esc(c.src_ip)}" data-dst="${esc(c.dst_ip)}" data-sport="${c.src_port}" data-dport="${c.dst_port}">` +
      `<td>${esc(c.src_ip)}:${c.src_port}</td><td>${esc(c.dst_ip)}:${c.dst_port}</td><td>${esc(c.direction === "active" ? "client" : c.direction === "passive" ? "server" : "?")}</td>` +
      `<td class="${c.failed ? "bad" : ""}">${esc(st(c))}</td><td class="num">${fmtBytes(c.bytes_sent)}</td><td class="num">${fmtBytes(c.bytes_received)}</td>` +
      `<td class="wrap">${c.comm ? `${esc(c.comm)} (${c.pid})` : ""}</td></tr>`).join("") +
    "</tbody></table>";
}

// The events and anomalies of the window that involve any of the nodes.
function eventsTable(nodeIds) {
  const want = new Set(nodeIds);
  const rows = timelineEntries(Date.now()).filter((e) => e.nodes.some((n) => want.has(n)));
  return `<h3>Events and anomalies (${rows.length})</h3><ul id="details-events" class="details-events">` +
    rows.map((e) => `<li data-kind="${e.kind}" data-id="${e.id}"><time>${esc(new Date(e.at).toLocaleTimeString())}</time> ${e.html}</li>`).join("") +
    "</ul>";
}

const unique = (xs, key) => { const seen = new Set(); return xs.filter((x) => { const k = key(x); if (seen.has(k)) return false; seen.add(k); return true; }); };

let detailsToken = 0;
let detailsFresh = false;  // a new selection: its details start at the top of the pane
function setDetails(html) {
  const pane = $("details");
  pane.innerHTML = html;
  if (detailsFresh) { pane.scrollTop = 0; detailsFresh = false; }
}

async function showSelected() {
  const id = state.selected;
  const el = cy.getElementById(id);
  const pane = $("details");
  if (el.empty()) { pane.innerHTML = `<h2>Details</h2><p class="hint">${esc(id)} is not in the current window.</p>`; return; }
  const token = ++detailsToken;
  if (el.isEdge()) {
    const e = answerOf.get(id);
    const src = model.data.nodes.find((n) => n.id === e.source), dst = model.data.nodes.find((n) => n.id === e.target);
    let html = `<h2>${esc(nameOf(e.source))} &rarr; ${esc(nameOf(e.target))}:${e.port}</h2>` + dl([
      ["transport", e.transport], ["protocol", e.protocol], ["conversations", e.conversations],
      ["client -> server", `${fmtBytes(e.bytes_out)} in ${e.packets_out} packets`],
      ["server -> client", `${fmtBytes(e.bytes_in)} in ${e.packets_in} packets`],
      ["rate", fmtRate(e.bytes_per_second)], ["connections", `${e.connections_opened} opened, ${e.connections_failed} failed`],
      ["retransmits", e.retransmits], ["RTT", e.rtt_ms ? `${e.rtt_ms.toFixed(2)} ms` : ""],
      ["crosses segments", e.boundary ? "yes" : "no"],
      ["requests", e.requests !== undefined ? `${e.requests} (${e.requests_per_second.toFixed(2)}/s)` : ""],
      ["error rate", e.requests ? pct(e.error_rate) : ""],
      ["p50 / p99", e.requests ? `${fmtSecs(e.p50_seconds)} / ${fmtSecs(e.p99_seconds)}` : ""]]);
    const clientIps = new Set(src ? src.ips.slice(0, 4) : []), serverIps = dst ? dst.ips.slice(0, 4) : [];
    // Flows of the edge: both directions between the ends' addresses, on the server's port.
    const flowQueries = [], connQueries = [];
    for (const a of clientIps) {
      for (const b of serverIps) {
        for (const [x, y] of [[a, b], [b, a]])
          flowQueries.push(getJson(`flows?src_ip=${encodeURIComponent(x)}&dst_ip=${encodeURIComponent(y)}&port=${e.port}&limit=20`));
      }
    }
    // Connections of the edge: the server's address and port, the client's address at the other end.
    if (e.transport === "tcp")
      for (const b of serverIps) connQueries.push(getJson(`connections?state=all&ip=${encodeURIComponent(b)}&port=${e.port}&limit=200`));
    const flows = unique((await Promise.all(flowQueries)).flatMap((d) => (d && d.flows) || []),
                         (f) => `${f.interface}|${f.direction}|${f.src_ip}|${f.src_port}|${f.dst_ip}|${f.dst_port}|${f.protocol}`);
    const conns = unique((await Promise.all(connQueries)).flatMap((d) => (d && d.connections) || []), (c) => c.cookie)
      .filter((c) => (serverIps.includes(c.src_ip) && c.src_port === e.port && clientIps.has(c.dst_ip)) ||
                     (serverIps.includes(c.dst_ip) && c.dst_port === e.port && clientIps.has(c.src_ip)));
    if (token !== detailsToken) return;
    html += flowsTable(flows);
    if (e.transport === "tcp") html += connectionsTable(conns);
    if (e.protocol && dst) {
      const doc = await getJson(`l7/endpoints?service=${encodeURIComponent(`${dst.ips[0]}:${e.port}`)}&limit=20`);
      const eps = (doc && doc.endpoints) || [];
      if (token !== detailsToken) return;
      html += `<h3>L7 endpoints (${eps.length})</h3><table><thead><tr><th>side</th><th>method</th><th>route</th><th class="num">req</th><th class="num">errors</th><th class="num">p99</th></tr></thead><tbody>` +
        eps.map((p) => `<tr><td>${esc(p.side)}</td><td>${esc(p.method)}</td><td>${esc(p.route)}</td><td class="num">${p.requests}</td><td class="num">${p.errors}</td><td class="num">${fmtSecs(p.p99_seconds)}</td></tr>`).join("") +
        "</tbody></table>";
    }
    html += eventsTable([e.source, e.target]);
    setDetails(html);
  } else {
    const n = answerOf.get(id);
    const out = model.data.edges.filter((e) => e.source === n.id), inn = model.data.edges.filter((e) => e.target === n.id);
    let html = `<h2>${esc(n.name)}</h2>` + dl([
      ["kind", n.kind], ["namespace", n.namespace], ["workload", n.workload], ["pod", n.pod], ["process", n.process],
      ["segment", n.segment], ["addresses", n.ips.join(", ")], ["sent", fmtBytes(n.bytes_sent)], ["received", fmtBytes(n.bytes_received)],
      ["calls out", out.length], ["called by", inn.length]]) +
      `<h3>Talks to</h3><ul>${out.map((e) => `<li>${esc(nameOf(e.target))}:${e.port} ${esc(e.protocol || e.transport)}</li>`).join("")}</ul>` +
      `<h3>Called by</h3><ul>${inn.map((e) => `<li>${esc(nameOf(e.source))} :${e.port}</li>`).join("")}</ul>`;
    // Its flows and connections: every one with one of its addresses at either end.
    const ips = n.ips.slice(0, 4);
    const [fdocs, cdocs] = await Promise.all([
      Promise.all(ips.map((ip) => getJson(`flows?ip=${encodeURIComponent(ip)}&limit=50`))),
      Promise.all(ips.map((ip) => getJson(`connections?state=all&ip=${encodeURIComponent(ip)}&limit=50`)))]);
    if (token !== detailsToken) return;
    const flows = unique(fdocs.flatMap((d) => (d && d.flows) || []),
                         (f) => `${f.interface}|${f.direction}|${f.src_ip}|${f.src_port}|${f.dst_ip}|${f.dst_port}|${f.protocol}`);
    const conns = unique(cdocs.flatMap((d) => (d && d.connections) || []), (c) => c.cookie);
    html += flowsTable(flows) + connectionsTable(conns) + eventsTable([n.id]);
    setDetails(html);
  }
}

function select(id) {
  state.selected = id;
  detailsFresh = true;
  cy.elements().unselect();
  const el = cy.getElementById(id);
  if (el.nonempty()) el.select();
  for (const tr of [...$("edges").tBodies[0].rows, ...$("nodes").tBodies[0].rows]) {
    const on = tr.dataset.id === id;
    tr.classList.toggle("selected", on);
    tr.setAttribute("aria-selected", String(on));
  }
  showSelected();
}

cy.on("tap", "node, edge", (ev) => select(ev.target.id()));
cy.on("tap", (ev) => { if (ev.target === cy) { state.selected = null; $("details").innerHTML = "<h2>Details</h2><p class=\"hint\">Select a node or an edge.</p>"; } });

$("edges").tBodies[0].addEventListener("click", (ev) => { const tr = ev.target.closest("tr"); if (tr) select(tr.dataset.id); });
$("edges").tBodies[0].addEventListener("keydown", (ev) => {
  const tr = ev.target.closest("tr");
  if (!tr) return;
  if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(tr.dataset.id); }
  if (ev.key === "ArrowDown" && tr.nextElementSibling) { ev.preventDefault(); tr.nextElementSibling.focus(); }
  if (ev.key === "ArrowUp" && tr.previousElementSibling) { ev.preventDefault(); tr.previousElementSibling.focus(); }
});

for (const k of ["window", "group_by", "namespace", "protocol", "colour"]) {
  $(k).addEventListener("change", () => {
    state[k] = $(k).value.trim();
    if (k === "group_by") cy.elements().remove();
    $("legend-colour").textContent = state.colour === "rtt" ? "RTT (green 0 ms - red 1 s; grey: none)" : "error rate (green 0% - red 25%+; grey: no requests)";
    if (k !== "colour") openStream();
    else if (model.data) render(model.data);
    refresh();
  });
}
$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(state.paused));
  if (state.paused) closeStream(); else { openStream(); refresh(); }
});

function topologyQuery() {
  const q = new URLSearchParams({ window: state.window, group_by: state.group_by });
  if (state.namespace) q.set("namespace", state.namespace);
  if (state.protocol) q.set("protocol", state.protocol);
  return q;
}

// Live updates: GET /api/v1/topology/stream (server-sent events): a snapshot, then at each
// collection the diff (nodes/edges added, removed, fields updated) applied to the page's
// copy. EventSource reconnects by itself (with Last-Event-ID: the missed diffs or a new
// snapshot); while the stream is down the 1 s poll fetches the topology instead.
model.stream = { connected: false, snapshots: 0, diffs: 0, errors: 0 };
let source = null, live = null;  // live: { meta, nodes: Map, edges: Map }

function liveDocument() {
  const edges = [...live.edges.values()].sort((a, b) => (b.bytes_out + b.bytes_in) - (a.bytes_out + a.bytes_in));
  const nodes = [...live.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { ...live.meta, nodes, edges };
}

function applySection(map, d) {
  if (!d) return;
  for (const id of d.removed || []) map.delete(id);
  for (const u of d.updated || []) {
    const o = map.get(u.id);
    if (!o) continue;
    for (const [k, v] of Object.entries(u)) { if (v === null) delete o[k]; else o[k] = v; }
  }
  for (const o of d.added || []) map.set(o.id, o);
}

function closeStream() {
  if (source) source.close();
  source = null;
  live = null;
  model.stream.connected = false;
}

function openStream() {
  closeStream();
  if (!window.EventSource || state.paused) return;
  const es = new EventSource(api(`topology/stream?${topologyQuery()}`));
  source = es;
  es.addEventListener("snapshot", (ev) => {
    if (source !== es) return;
    const doc = JSON.parse(ev.data);
    const { nodes, edges, ...meta } = doc;
    live = { meta, nodes: new Map(nodes.map((n) => [n.id, n])), edges: new Map(edges.map((e) => [e.id, e])) };
    model.stream.connected = true;
    model.stream.snapshots++;
    model.via = "stream";
    if (doc.enabled) render(liveDocument());
  });
  es.addEventListener("diff", (ev) => {
    if (source !== es || !live) return;
    const d = JSON.parse(ev.data);
    applySection(live.nodes, d.nodes);
    applySection(live.edges, d.edges);
    for (const [k, v] of Object.entries(d.meta || {})) { if (v === null) delete live.meta[k]; else live.meta[k] = v; }
    live.meta.seq = d.seq;
    model.stream.connected = true;
    model.stream.diffs++;
    model.via = "stream";
    render(liveDocument());
  });
  es.onerror = () => {
    if (source !== es) return;
    model.stream.connected = false;
    model.stream.errors++;
    if (es.readyState === EventSource.CLOSED) setTimeout(() => { if (source === es) openStream(); }, 5000);
  };
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    if (!(model.stream.connected && live)) {
      const r = await fetch(api(`topology?${topologyQuery()}`));
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
      if (!body.enabled) throw new Error("the agent has no topology stage");
      model.via = "poll";
      render(body);
    }
    model.updates++;
    await sampleInterfaces();
    await loadEvents();
  } catch (err) {
    model.errors++;
    model.lastError = String(err.message || err);
    $("status").textContent = `cannot load the topology: ${model.lastError}`;
    $("status").classList.add("error");
  }
  if (!state.paused) timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
}
// ---- packet path (GET /api/v1/trace) -------------------------------------------------
// Starts a trace of a 5-tuple (either direction; empty fields match anything) for a few
// seconds, then reads it every second until it is finished: the stages its packets passed
// through this node's kernel, in order, with counts, devices and drops by kernel reason.
model.trace = { id: 0, state: "", result: null, error: "" };
let traceTimer = null;

function renderTrace(t) {
  const out = [];
  for (const dir of ["forward", "reply"]) {
    const stages = (t.path && t.path[dir]) || [];
    if (!stages.length) continue;
    const items = stages.map((st) => {
      const devs = [...(st.in || []), ...(st.out || [])].map((d) => esc(d.name || `if${d.ifindex}`)).join(", ");
      const drops = (st.drops || []).map((d) =>
        `<li class="drop" data-stage="${esc(st.stage)}" data-reason="${esc(d.reason)}" data-packets="${d.packets}">dropped at ${esc(st.stage)}: ${esc(d.reason)} &times;${d.packets}</li>`).join("");
      return `<li data-stage="${esc(st.stage)}" data-packets="${st.packets}">${esc(st.stage)} <b>${st.packets}</b>` +
        `${devs ? ` <span class="dev">${devs}</span>` : ""}</li>${drops}`;
    });
    out.push(`<h3>${dir === "forward" ? "as matched" : "the other way"}</h3><ol class="path" data-direction="${dir}">${items.join("")}</ol>`);
  }
  const egress = (t.egress || []).filter((e) => e.stage === "postrouting");
  if (egress.length) out.push(`<p>forwarded out of ${egress.map((e) => `${esc(e.name)} (${e.packets})`).join(", ")}</p>`);
  if ((t.processes || []).length)
    out.push(`<p>processes: ${t.processes.map((p) => `${esc(p.comm)} (pid ${p.pid}, ${p.calls} calls)`).join(", ")}</p>`);
  if (!out.length && t.state !== "pending") out.push(`<p class="hint">no packet of this flow seen yet</p>`);
  $("trace-result").innerHTML = out.join("");
}

function traceStatus(text, bad) {
  $("trace-status").textContent = text;
  $("trace-status").classList.toggle("error", !!bad);
}

async function pollTrace(id) {
  clearTimeout(traceTimer);
  if (id !== model.trace.id) return;
  try {
    const r = await fetch(api(`trace?id=${id}`));
    const t = await r.json();
    if (id !== model.trace.id) return;
    if (!r.ok) throw new Error(t.error || `HTTP ${r.status}`);
    model.trace.state = t.state;
    model.trace.result = t;
    renderTrace(t);
    const ends = t.ends ? ` until ${new Date(Date.parse(t.ends)).toLocaleTimeString()}` : "";
    traceStatus(t.state === "failed" ? `trace ${id} failed: ${t.error || "unknown"}` : `trace ${id}: ${t.state}${t.state === "running" ? ends : ""}`,
                t.state === "failed");
    if (t.state === "finished" || t.state === "failed") return;
  } catch (err) {
    model.trace.error = String(err.message || err);
    traceStatus(`cannot read trace ${id}: ${model.trace.error}`, true);
  }
  traceTimer = setTimeout(() => pollTrace(id), POLL_MS);
}

async function startTrace() {
  const q = new URLSearchParams();
  for (const k of ["src", "dst", "sport", "dport", "proto", "seconds"]) {
    const v = $(`trace-${k}`).value.trim();
    if (v) q.set(k, v);
  }
  model.trace = { id: 0, state: "", result: null, error: "" };
  $("trace-result").innerHTML = "";
  try {
    const r = await fetch(api(`trace?${q}`));
    const t = await r.json();
    if (!r.ok) throw new Error(t.error || `HTTP ${r.status}`);
    model.trace.id = t.id;
    model.trace.state = t.state;
    traceStatus(`trace ${t.id}: ${t.state}`);
    pollTrace(t.id);
  } catch (err) {
    model.trace.error = String(err.message || err);
    traceStatus(`cannot start the trace: ${model.trace.error}`, true);
  }
}

$("trace-form").addEventListener("submit", (ev) => { ev.preventDefault(); startTrace(); });
$("details").addEventListener("click", (ev) => {
  const b = ev.target.closest("button.trace");
  if (!b) return;
  ev.stopPropagation();
  for (const k of ["src", "dst", "sport", "dport"]) $(`trace-${k}`).value = b.dataset[k] || "";
  const proto = b.dataset.proto || "";
  $("trace-proto").value = [...$("trace-proto").options].some((o) => o.value === proto) ? proto : "";
  startTrace();
  $("trace-pane").scrollIntoView({ block: "nearest" });
});

openStream();
refresh();
