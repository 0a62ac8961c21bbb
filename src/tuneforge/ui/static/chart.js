// A small line chart on a <canvas>: several named series of [x, y] points, axes with a few ticks.
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

function drawChart(canvas, series, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 56, r: 12, t: 22, b: 26 };
  const all = series.flatMap(s => s.points);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#374151";
  ctx.fillText(opts.title || "", pad.l, 14);
  if (!all.length) {
    ctx.fillStyle = "#9ca3af";
    ctx.fillText("no points yet", w / 2 - 36, h / 2);
    return;
  }
  let [x0, x1] = [Math.min(...all.map(p => p[0])), Math.max(...all.map(p => p[0]))];
  let [y0, y1] = [Math.min(...all.map(p => p[1])), Math.max(...all.map(p => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const X = x => pad.l + (x - x0) / (x1 - x0) * (w - pad.l - pad.r);
  const Y = y => h - pad.b - (y - y0) / (y1 - y0) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#d1d5db"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, h - pad.b); ctx.lineTo(w - pad.r, h - pad.b); ctx.stroke();
  ctx.fillStyle = "#6b7280";
  for (let i = 0; i <= 3; i++) {
    const y = y0 + (y1 - y0) * i / 3;
    ctx.fillText(formatNumber(y), 4, Y(y) + 4);
  }
  // x is a step count: whole-number ticks, each once
  for (const x of new Set([0, 1, 2, 3].map(i => Math.round(x0 + (x1 - x0) * i / 3)))) {
    ctx.fillText(String(x), X(x) - 6, h - 8);
  }
  series.forEach((s, i) => {
    ctx.strokeStyle = ctx.fillStyle = s.color || PALETTE[i % PALETTE.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach((p, j) => (j ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
    s.points.forEach(p => { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 2.5, 0, 7); ctx.fill(); });
    if (series.length > 1) ctx.fillText(s.name, w - pad.r - 160, pad.t + 14 * i + 4);
  });
  canvas.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
}

function formatNumber(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-2 || a >= 1e5)) return v.toExponential(1);
  return a < 1000 ? String(Number(v.toPrecision(4))) : v.toFixed(0);
}
