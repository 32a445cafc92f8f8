// Rempart operations console: live charts and figures from the server-sent event stream.
// Plain DOM + SVG, no dependencies. Everything else on the page works without this script.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const WINDOW = 300; // seconds kept; the charts show the last 60 to 300 seconds
  const COLORS = { allow: "#2f855a", delay: "#d69e2e", step_up: "#dd6b20", deny: "#c53030" };
  const PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#00838f", "#c53030", "#4a5568"];
  let history = [];

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function colorOf(name, i) { return COLORS[name] || PALETTE[i % PALETTE.length]; }
  function sumInto(target, obj) { for (const k in obj) target[k] = (target[k] || 0) + obj[k]; }

  // One value per series for each history point.
  const extract = {
    verdicts: function (p) { const out = {}; for (const proto in p.decisions) sumInto(out, p.decisions[proto]); return out; },
    protocols: function (p) {
      const out = {};
      for (const proto in p.reports) { const r = p.reports[proto]; out[proto] = (r.success || 0) + (r.failure || 0); }
      return out;
    },
    reasons: function (p) { return p.reasons || {}; },
  };

  function niceMax(v) {
    if (v <= 0) return 1;
    const m = Math.pow(10, Math.floor(Math.log10(v)));
    for (const s of [1, 2, 2.5, 5, 10]) if (v <= s * m) return s * m;
    return 10 * m;
  }
  function hhmmss(t) { return new Date(t * 1000).toISOString().substring(11, 19); }

  function draw(box) {
    const kind = box.dataset.kind;
    const points = history.slice(-WINDOW);
    const span = points.length > 1 ? points[points.length - 1].t - points[0].t : 0;
    const shown = Math.min(WINDOW, Math.max(60, Math.ceil(span / 30) * 30));
    const names = [];
    const rows = points.map(function (p) {
      const v = extract[kind](p);
      for (const k in v) if (names.indexOf(k) < 0) names.push(k);
      return v;
    });
    if (kind === "verdicts") names.sort(function (a, b) { return Object.keys(COLORS).indexOf(a) - Object.keys(COLORS).indexOf(b); });
    else names.sort();
    const totals = {}; let total = 0; let peak = 0;
    rows.forEach(function (r) { names.forEach(function (n) { const v = r[n] || 0; totals[n] = (totals[n] || 0) + v; total += v; if (v > peak) peak = v; }); });
    const plot = box.querySelector(".plot");
    const W = Math.max(240, plot.clientWidth || 600), H = 170, L = 40, R = 8, T = 8, B = 22;
    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
    const ymax = niceMax(peak);
    for (let k = 0; k <= 4; k++) {
      const y = T + (H - T - B) * (1 - k / 4);
      el("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e2e8f0" }, svg);
      const label = el("text", { x: L - 5, y: y + 4, "font-size": 10, "text-anchor": "end", fill: "#5a6473" }, svg);
      label.textContent = String(Math.round(ymax * k / 4 * 10) / 10);
    }
    const now = points.length ? points[points.length - 1].t : Date.now() / 1000;
    const x = function (t) { return L + (W - L - R) * (1 - (now - t) / shown); };
    const y = function (v) { return T + (H - T - B) * (1 - v / ymax); };
    [shown, shown / 2, 0].forEach(function (ago) {
      const t = el("text", { x: x(now - ago), y: H - 6, "font-size": 10, fill: "#5a6473",
        "text-anchor": ago === shown ? "start" : ago === 0 ? "end" : "middle" }, svg);
      t.textContent = hhmmss(now - ago) + "Z";
    });
    names.forEach(function (n, i) {
      const coords = points.map(function (p, j) { return x(p.t).toFixed(1) + "," + y(rows[j][n] || 0).toFixed(1); });
      if (coords.length) el("polyline", { points: coords.join(" "), fill: "none", stroke: colorOf(n, i), "stroke-width": 1.8,
        "stroke-linejoin": "round", "data-series": n }, svg);
    });
    plot.replaceChildren(svg);
    const legend = box.querySelector(".legend");
    legend.replaceChildren();
    names.forEach(function (n, i) {
      const item = document.createElement("span");
      item.dataset.series = n; item.dataset.count = totals[n];
      const sw = el("svg", { width: 10, height: 10, viewBox: "0 0 10 10" }, item);
      el("rect", { width: 10, height: 10, rx: 2, fill: colorOf(n, i) }, sw);
      item.appendChild(document.createTextNode(" " + n + " " + totals[n].toLocaleString()));
      legend.appendChild(item);
    });
    if (!names.length) { const none = document.createElement("span"); none.textContent = "no traffic in this window"; legend.appendChild(none); }
    const tag = box.querySelector(".total");
    tag.dataset.total = total; tag.textContent = total.toLocaleString() + " in " + (shown >= 120 ? shown / 60 + " min" : shown + " s");
  }

  function drawAll() { document.querySelectorAll(".chart-box").forEach(draw); }

  function fillTop(id, items) {
    const table = document.getElementById(id);
    if (!table) return;
    const param = table.dataset.param;
    const body = table.tBodies[0];
    body.replaceChildren();
    if (!items.length) {
      const tr = body.insertRow(); tr.className = "empty";
      const td = tr.insertCell(); td.colSpan = 3; td.textContent = "Nothing hostile in the last minutes.";
      return;
    }
    items.forEach(function (it) {
      const tr = body.insertRow();
      const a = document.createElement("a");
      a.href = "/ops/journal?" + param + "=" + encodeURIComponent(it.key); a.textContent = it.key;
      tr.insertCell().appendChild(a);
      const c = tr.insertCell(); c.className = "num"; c.textContent = it.count.toLocaleString();
      const r = tr.insertCell(); r.className = "reasons"; r.textContent = it.reasons.join(", ");
    });
  }

  function update(data) {
    if (data.tops) { fillTop("top-ips", data.tops.ips); fillTop("top-subnets", data.tops.subnets); fillTop("top-logins", data.tops.logins); }
    if (data.postures) for (const p in data.postures) {
      const badge = document.getElementById("posture-" + p);
      if (badge && badge.textContent !== data.postures[p]) { badge.textContent = data.postures[p]; badge.className = "badge lvl-" + data.postures[p]; }
    }
    if (data.posture_facts) for (const p in data.posture_facts) {
      const fact = data.posture_facts[p];
      ["by", "reason", "since", "until", "detector"].forEach(function (key) {
        const cell = document.getElementById("posture-" + p + "-" + key);
        if (cell && cell.textContent !== String(fact[key])) cell.textContent = fact[key];
      });
    }
    if (data.lists) for (const which in data.lists) {
      const n = document.getElementById("count-" + which); if (n) n.textContent = data.lists[which];
    }
  }

  function setLive(on, text) {
    const tag = document.getElementById("live");
    if (!tag) return;
    tag.className = "live " + (on ? "on" : "off"); tag.textContent = text;
  }

  function start() {
    fetch("/ops/api/snapshot", { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { window.location = "/ops/login?expired=1"; return null; }
      return r.json();
    }).then(function (snap) {
      if (!snap) return;
      history = snap.history.concat(history).slice(-WINDOW);
      update(snap); drawAll();
    }).catch(function () { setLive(false, "offline"); });
    const source = new EventSource("/ops/events");
    source.addEventListener("open", function () { setLive(true, "live"); });
    source.addEventListener("tick", function (ev) {
      const data = JSON.parse(ev.data);
      history.push(data.point);
      if (history.length > WINDOW) history.shift();
      update(data); drawAll(); setLive(true, "live");
    });
    source.addEventListener("expired", function () { source.close(); window.location = "/ops/login?expired=1"; });
    source.addEventListener("error", function () { setLive(false, "reconnecting"); });
  }

  if (document.querySelector(".chart-box")) start();
})();
