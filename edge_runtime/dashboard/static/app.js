// edge-runtime dashboard: plain JavaScript, no libraries, nothing loaded from elsewhere.
// Talks to the routes in edge_runtime/dashboard/routes.py. Coordinates in the editor are source-frame
// pixels (the config file's), whatever size the live image is shown at.
"use strict";

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const SVG = "http://www.w3.org/2000/svg";
const BLANK = "data:image/gif;base64,R0lGODlhAQABAAAAACw=";
const COLOURS = ["#ffe14d", "#33c3ff", "#ff6b6b", "#5ee18b", "#c18cff", "#ff9f43", "#4de1d2", "#ff4dd2"];

let state = null;
let places = { lines: [], zones: [] };
let classNames = {};
let mode = null;       // null | "line" | "zone"
let draft = null;      // line: {start, end}; zone: [[x, y], ...]

// ------------------------------------------------------------------------------------------ http

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    location.href = "/dashboard/login";
    throw new Error("not logged in");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
  return body;
}

function writeHeaders() {
  return { "Content-Type": "application/json", "X-CSRF-Token": csrf };
}

function post(path, data) {
  return api(path, { method: "POST", headers: writeHeaders(), body: JSON.stringify(data) });
}

function el(tag, attrs = {}, text = null) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------------------------------ live

function setLive(on) {
  // Replacing the source closes the MJPEG connection: the server stops encoding when nobody watches.
  $("live").src = on ? "/dashboard/live.mjpg?t=" + Date.now() : BLANK;
  $("live-note").textContent = on ? "" : "paused (nothing is encoded)";
}

$("live-on").addEventListener("change", (e) => setLive(e.target.checked));
document.addEventListener("visibilitychange", () => setLive(!document.hidden && $("live-on").checked));

// ---------------------------------------------------------------------------------------- editor

function frameSize() {
  return state && state.frame_size ? state.frame_size : [640, 480];
}

function toFrame(event) {
  const rect = $("overlay").getBoundingClientRect();
  const [w, h] = frameSize();
  const x = Math.round(((event.clientX - rect.left) * w) / rect.width);
  const y = Math.round(((event.clientY - rect.top) * h) / rect.height);
  return [Math.max(0, Math.min(w, x)), Math.max(0, Math.min(h, y))];
}

function inArrow(start, end) {
  // Facing from start to end, "in" is to your right: on the image (y down) that is (-dy, dx).
  const dx = end[0] - start[0], dy = end[1] - start[1];
  const n = Math.hypot(dx, dy) || 1;
  const mid = [(start[0] + end[0]) / 2, (start[1] + end[1]) / 2];
  return [mid, [mid[0] - (dy / n) * 30, mid[1] + (dx / n) * 30]];
}

function drawOverlay() {
  const svg = $("overlay");
  const [w, h] = frameSize();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  for (const line of places.lines) {
    svg.append(el("svg:line", { class: "line", x1: line.start[0], y1: line.start[1], x2: line.end[0], y2: line.end[1],
                                "stroke-dasharray": "8 6" }));
    const [a, b] = inArrow(line.start, line.end);
    svg.append(el("svg:line", { class: "line", x1: a[0], y1: a[1], x2: b[0], y2: b[1] }));
    svg.append(el("svg:text", { x: b[0] + 4, y: b[1] + 4 }, `${line.name} (in)`));
  }
  for (const zone of places.zones) {
    svg.append(el("svg:polygon", { class: "zone", points: zone.polygon.map((p) => p.join(",")).join(" ") }));
    svg.append(el("svg:text", { x: zone.polygon[0][0] + 4, y: zone.polygon[0][1] - 6 }, zone.name));
  }
  if (mode === "line" && draft) {
    svg.append(el("svg:line", { class: "draft", x1: draft.start[0], y1: draft.start[1], x2: draft.end[0], y2: draft.end[1] }));
  }
  if (mode === "zone" && draft && draft.length) {
    svg.append(el("svg:polyline", { class: "draft", points: draft.map((p) => p.join(",")).join(" ") }));
  }
}

function uniqueName(prefix) {
  const used = new Set([...places.lines, ...places.zones].map((p) => p.name));
  let i = 1;
  while (used.has(`${prefix}${i}`)) i += 1;
  return `${prefix}${i}`;
}

function setMode(next) {
  mode = next;
  draft = next === "zone" ? [] : null;
  $("stage").classList.toggle("drawing", mode !== null);
  $("cancel-draw").classList.toggle("hidden", mode === null);
  $("finish-zone").classList.toggle("hidden", mode !== "zone");
  $("draw-hint").textContent = mode === "line" ? "press, drag and release on the image" :
    mode === "zone" ? "click the corners, then Finish zone (or double-click)" : "";
  drawOverlay();
}

function finishZone() {
  if (mode === "zone" && draft && draft.length >= 3) {
    places.zones.push({ name: uniqueName("zone"), polygon: draft });
    renderPlaces();
  }
  setMode(null);
}

const overlay = $("overlay");
overlay.addEventListener("mousedown", (e) => {
  if (mode !== "line") return;
  e.preventDefault();
  const p = toFrame(e);
  draft = { start: p, end: p };
});
overlay.addEventListener("mousemove", (e) => {
  if (mode === "line" && draft) {
    draft.end = toFrame(e);
    drawOverlay();
  }
});
overlay.addEventListener("mouseup", (e) => {
  if (mode !== "line" || !draft) return;
  draft.end = toFrame(e);
  if (Math.hypot(draft.end[0] - draft.start[0], draft.end[1] - draft.start[1]) >= 5) {
    places.lines.push({ name: uniqueName("line"), start: draft.start, end: draft.end });
    renderPlaces();
  }
  setMode(null);
});
overlay.addEventListener("click", (e) => {
  if (mode === "zone") {
    draft.push(toFrame(e));
    drawOverlay();
  }
});
overlay.addEventListener("dblclick", finishZone);
$("draw-line").addEventListener("click", () => setMode("line"));
$("draw-zone").addEventListener("click", () => setMode("zone"));
$("finish-zone").addEventListener("click", finishZone);
$("cancel-draw").addEventListener("click", () => setMode(null));

function classBoxes(item) {
  const box = el("span");
  for (const [id, label] of Object.entries(classNames)) {
    const check = el("input", { type: "checkbox", "data-class": id });
    check.checked = !item.classes || item.classes.includes(Number(id));
    check.addEventListener("change", () => {
      const chosen = [...box.querySelectorAll("input")].filter((c) => c.checked).map((c) => Number(c.dataset.class));
      if (chosen.length === Object.keys(classNames).length) delete item.classes;
      else item.classes = chosen;
    });
    const label_ = el("label");
    label_.append(check, document.createTextNode(" " + label + " "));
    box.append(label_);
  }
  return box;
}

function placeRow(item, kind, list, index) {
  const row = el("div", { class: "place", "data-kind": kind, "data-index": index });
  const name = el("input", { class: "name", value: item.name, "aria-label": `${kind} name` });
  name.addEventListener("input", () => { item.name = name.value; drawOverlay(); });
  row.append(el("span", { class: "muted" }, kind), name);
  if (kind === "line") {
    row.append(el("span", { class: "muted" }, `(${item.start.join(", ")}) → (${item.end.join(", ")})`));
    const flip = el("button", { type: "button", class: "flip" }, "flip in/out");
    flip.addEventListener("click", () => { [item.start, item.end] = [item.end, item.start]; renderPlaces(); });
    row.append(flip);
  } else {
    row.append(el("span", { class: "muted" }, `${item.polygon.length} corners`));
  }
  row.append(classBoxes(item));
  const remove = el("button", { type: "button", class: "remove" }, "delete");
  remove.addEventListener("click", () => { list.splice(index, 1); renderPlaces(); });
  row.append(remove);
  return row;
}

function renderPlaces() {
  const box = $("places");
  box.replaceChildren();
  places.lines.forEach((item, i) => box.append(placeRow(item, "line", places.lines, i)));
  places.zones.forEach((item, i) => box.append(placeRow(item, "zone", places.zones, i)));
  if (!places.lines.length && !places.zones.length) box.append(el("p", { class: "muted" }, "no lines or zones"));
  drawOverlay();
}

$("save-places").addEventListener("click", async () => {
  const out = $("save-result");
  out.className = "muted";
  out.textContent = "saving…";
  try {
    const result = await post("/dashboard/api/places", places);
    places = result.places;
    renderPlaces();
    const a = result.applied;
    out.className = "ok";
    out.textContent = `saved and applied: kept ${a.kept.length}, changed ${a.changed.length}, ` +
      `added ${a.added.length}, removed ${a.removed.length}`;
  } catch (err) {
    out.className = "error";
    out.textContent = err.message;
  }
});

// ---------------------------------------------------------------------------------------- counts

function byClass(counts) {
  return Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ");
}

function countRow(name, direction, total, counts) {
  const row = el("tr", { "data-place": name, "data-direction": direction });
  row.append(el("td", {}, name), el("td", {}, direction), el("td", { class: "num total" }, String(total)),
             el("td", { class: "muted" }, byClass(counts)));
  return row;
}

function renderCounts(data) {
  const body = $("counts").querySelector("tbody");
  body.replaceChildren();
  for (const line of data.lines) {
    body.append(countRow(line.name, "in", line.in_total, line.in), countRow(line.name, "out", line.out_total, line.out));
  }
  for (const zone of data.zones) {
    body.append(countRow(zone.name, "enter", zone.enter_total, zone.enter),
                countRow(zone.name, "exit", zone.exit_total, zone.exit),
                countRow(zone.name, "inside", zone.inside_total, zone.inside));
  }
}

function listenCounts() {
  const source = new EventSource("/dashboard/api/counts/stream");
  source.onmessage = (e) => renderCounts(JSON.parse(e.data));
  source.onerror = () => { $("status").textContent = "reconnecting…"; };
  source.onopen = () => { $("status").textContent = "live"; };
}

// ---------------------------------------------------------------------------------------- charts

function timeLabel(t, clock) {
  if (clock === "unix") return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const m = Math.floor(t / 60), s = Math.floor(t % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

function drawChart(data) {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const left = 40, right = 10, top = 10, bottom = 24;
  const series = data.series;
  const bins = series.length ? series[0].values.length : Math.round((data.end_s - data.start_s) / data.bin_s);
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (i) => left + ((w - left - right) * i) / Math.max(1, bins);
  const y = (v) => h - bottom - ((h - top - bottom) * v) / max;
  g.strokeStyle = "#2a313b";
  g.fillStyle = "#8b95a5";
  g.font = "11px system-ui";
  const tick = Math.max(1, Math.ceil(max / 4));
  for (let v = 0; v <= max; v += tick) {
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();
    g.fillText(String(v), 4, y(v) + 4);
  }
  for (let k = 0; k <= 4; k += 1) {
    const i = Math.round((bins * k) / 4);
    g.fillText(timeLabel(data.start_s + i * data.bin_s, data.clock), x(i) - 14, h - 6);
  }
  const legend = $("legend");
  legend.replaceChildren();
  series.forEach((s, n) => {
    const colour = COLOURS[n % COLOURS.length];
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    s.values.forEach((v, i) => { const px = x(i + 0.5), py = y(v); if (i) g.lineTo(px, py); else g.moveTo(px, py); });
    g.stroke();
    g.fillStyle = colour;
    s.values.forEach((v, i) => { if (v) { g.beginPath(); g.arc(x(i + 0.5), y(v), 3, 0, 2 * Math.PI); g.fill(); } });
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = colour;
    item.append(swatch, document.createTextNode(`${s.name} ${s.direction}: ${s.total}`));
    legend.append(item);
  });
  // The live edge: where "now" is inside the last, still filling bin.
  const nowX = x((data.now_s - data.start_s) / data.bin_s);
  g.strokeStyle = "#ff4dd2";
  g.lineWidth = 1;
  g.setLineDash([4, 4]);
  g.beginPath(); g.moveTo(nowX, top); g.lineTo(nowX, h - bottom); g.stroke();
  g.setLineDash([]);
  $("chart-note").textContent = `per ${data.bin_s / 60} min` + (data.clock === "source" ? " (video time)" : "")
    + (data.outage_s ? `; camera without video for ${data.outage_s < 90 ? Math.round(data.outage_s) + " s"
      : Math.round(data.outage_s / 60) + " min"} of it` : "");
}

async function refreshChart() {
  if (!state || !state.history) { $("chart-note").textContent = "no results database"; return; }
  try { drawChart(await api("/dashboard/api/history?range=" + $("range").value)); } catch (err) {
    $("chart-note").textContent = err.message;
  }
}
$("range").addEventListener("change", refreshChart);

// -------------------------------------------------------------------------------------- timeline

async function refreshEvents() {
  if (!state || !state.history) return;
  try {
    const data = await api("/dashboard/api/events?limit=50");
    const list = $("events");
    list.replaceChildren();
    for (const e of data.events) {
      const item = el("li", { "data-event": e.id });
      item.append(e.snapshot ? el("img", { src: "/dashboard/snapshots/" + e.snapshot, alt: "snapshot" })
                             : el("img", { src: BLANK, alt: "" }));
      item.append(el("span", {}, `${timeLabel(e.t_s, e.t_s > 1e9 ? "unix" : "source")}  ${e.name} ${e.direction} · ` +
                                 `${e.class} #${e.track_id}`));
      list.append(item);
    }
  } catch (err) { /* shown by the next refresh */ }
}

// ------------------------------------------------------------------------------------------ chat

async function ask(question) {
  const log = $("chat-log");
  log.append(el("div", { class: "msg q" }, question));
  const answer = el("div", { class: "msg a" }, "");
  log.append(answer);
  const response = await fetch("/dashboard/api/chat", { method: "POST", credentials: "same-origin",
    headers: writeHeaders(), body: JSON.stringify({ question }) });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    answer.textContent = "error: " + (body.error ? body.error.message : response.statusText);
    answer.classList.add("error");
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.error) { answer.textContent += " [error: " + chunk.error.message + "]"; continue; }
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) answer.textContent += delta.content;
      log.scrollTop = log.scrollHeight;
    }
  }
  answer.classList.add("done");
  const button = el("button", { type: "button", class: "show-facts" }, "facts");
  const facts = el("div", { class: "facts hidden" });
  button.addEventListener("click", async () => {
    if (facts.classList.contains("hidden") && !facts.textContent) {
      const data = await api("/dashboard/api/facts?q=" + encodeURIComponent(question));
      facts.textContent = data.grounded ? JSON.stringify({ value: data.facts && data.facts.value, query: data.query,
        data: data.facts && data.facts.data, via: data.via, parsed_by: data.parsed_by }, null, 1) : data.note;
    }
    facts.classList.toggle("hidden");
  });
  log.append(button, facts);
}

$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("question").value = "";
  ask(question).catch((err) => $("chat-log").append(el("div", { class: "msg error" }, err.message)));
});

// ---------------------------------------------------------------------------------------- system

function fmt(v, digits = 1) {
  return typeof v === "number" ? v.toFixed(digits) : String(v);
}

async function refreshSystem() {
  try {
    const s = await api("/dashboard/api/system");
    const rows = [
      ["detection fps", fmt(s.detection_fps, 2)],
      ["frames", s.frames_total],
      ["frame age p50 / p95 (s)", `${fmt(s.frame_age_p50_s, 2)} / ${fmt(s.frame_age_p95_s, 2)}`],
      ["inference p50 / p95 (ms)", `${fmt(s.inference_ms_p50)} / ${fmt(s.inference_ms_p95)}`],
      ["dropped frames", s.dropped_frames_total],
      ["stuck frames / detector restarts", `${s.stuck_frames_total} / ${s.detector_restarts_total}`],
      ...Object.entries(s.cpu_percent || {}).map(([k, v]) => [`CPU % ${k}`, fmt(v)]),
      ["RSS (MB)", fmt(s.rss_bytes / 1e6)],
      ["policy", s.policy + (s.paused ? " (paused)" : "")],
      ["budget", `${s.budget.cores} cores, target ${fmt(s.budget.target_fps)} fps`],
      ["chat tokens/s (last / mean)", `${fmt(s.chat_tokens_per_s)} / ${fmt(s.chat_tokens_per_s_mean)}`],
      ["chat queue", s.chat_queue_depth],
      ["uptime (s)", fmt(s.uptime_s, 0)],
    ];
    const body = $("system").querySelector("tbody");
    body.replaceChildren(...rows.map(([k, v]) => {
      const row = el("tr", { "data-metric": k });
      row.append(el("td", {}, k), el("td", { class: "num" }, String(v)));
      return row;
    }));
    $("status").textContent = `live · ${fmt(s.detection_fps, 1)} fps · frame ${s.frames_total}`;
  } catch (err) { $("status").textContent = err.message; }
}

// ---------------------------------------------------------------------------------------- start

async function start() {
  state = await api("/dashboard/api/state");
  while (!state.frame_size) {  // the first frame is not processed yet
    await new Promise((r) => setTimeout(r, 500));
    state = await api("/dashboard/api/state");
  }
  classNames = state.class_names;
  places = state.places;
  $("editor-note").textContent = state.editor ? "" : (state.editor_note || "editing is switched off");
  for (const id of ["save-places", "draw-line", "draw-zone"]) $(id).disabled = !state.editor;
  $("logout-form").classList.toggle("hidden", !state.login);
  renderPlaces();
  setLive(!document.hidden && $("live-on").checked);
  listenCounts();
  refreshSystem();
  refreshChart();
  refreshEvents();
  setInterval(refreshSystem, 2000);
  setInterval(refreshChart, 5000);
  setInterval(refreshEvents, 5000);
}

$("logout").addEventListener("click", async () => {
  await fetch("/dashboard/logout", { method: "POST", credentials: "same-origin", headers: writeHeaders() });
  location.href = "/dashboard/login";
});

start().catch((err) => { $("status").textContent = err.message; });
