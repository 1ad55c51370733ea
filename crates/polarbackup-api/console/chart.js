// The backup-set chart: size (bars, left axis) and duration (line, right axis) over time,
// drawn as SVG by this code alone.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function humanSeconds(s) {
  if (s < 10) return `${Number(s.toFixed(1))} s`;
  s = Math.round(s);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A "nice" upper bound for an axis. */
function nice(max) {
  if (max <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/**
 * `points`: [{t: Date, size: bytes, seconds: duration, id}] (successful sets).
 * Returns an <svg> that scales to its container's width.
 */
export function setsChart(points) {
  const W = 640;
  const H = 240;
  const m = { l: 64, r: 56, t: 16, b: 40 };
  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    class: "chart",
    "aria-label": "Backup set sizes and durations over time",
  });
  const pts = [...points].sort((a, b) => a.t - b.t);
  if (pts.length === 0) {
    svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "No successful backup sets yet"));
    return svg;
  }
  const t0 = pts[0].t.getTime();
  const t1 = pts[pts.length - 1].t.getTime();
  const span = Math.max(t1 - t0, 1);
  const iw = W - m.l - m.r;
  const ih = H - m.t - m.b;
  const x = (t) => (pts.length === 1 ? m.l + iw / 2 : m.l + ((t.getTime() - t0) / span) * iw);
  const maxSize = nice(Math.max(...pts.map((p) => p.size)));
  const maxSecs = nice(Math.max(...pts.map((p) => p.seconds), 1));
  const ys = (v) => m.t + ih - (v / maxSize) * ih;
  const yd = (v) => m.t + ih - (v / maxSecs) * ih;

  // Grid and axes.
  for (let i = 0; i <= 4; i++) {
    const y = m.t + (ih * i) / 4;
    svg.appendChild(el("line", { x1: m.l, x2: W - m.r, y1: y, y2: y, class: "grid" }));
    svg.appendChild(el("text", { x: m.l - 6, y: y + 4, "text-anchor": "end", class: "axis size" }, humanBytes(maxSize * (1 - i / 4))));
    svg.appendChild(el("text", { x: W - m.r + 6, y: y + 4, class: "axis duration" }, humanSeconds(maxSecs * (1 - i / 4))));
  }
  const fmt = (d) => d.toISOString().slice(0, 16).replace("T", " ");
  svg.appendChild(el("text", { x: m.l, y: H - 10, class: "axis" }, fmt(pts[0].t)));
  if (pts.length > 1) {
    svg.appendChild(el("text", { x: W - m.r, y: H - 10, "text-anchor": "end", class: "axis" }, fmt(pts[pts.length - 1].t)));
  }

  // Sizes as bars.
  const bw = Math.max(3, Math.min(24, iw / (pts.length * 1.8)));
  for (const p of pts) {
    const r = el("rect", { x: x(p.t) - bw / 2, y: ys(p.size), width: bw, height: m.t + ih - ys(p.size), class: "bar-size" });
    r.appendChild(el("title", {}, `#${p.id}: ${humanBytes(p.size)}`));
    svg.appendChild(r);
  }
  // Durations as a line with dots.
  const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${yd(p.seconds).toFixed(1)}`).join(" ");
  svg.appendChild(el("path", { d, class: "line-duration" }));
  for (const p of pts) {
    const c = el("circle", { cx: x(p.t), cy: yd(p.seconds), r: 3.5, class: "dot-duration" });
    c.appendChild(el("title", {}, `#${p.id}: ${humanSeconds(p.seconds)}`));
    svg.appendChild(c);
  }
  // Legend.
  svg.appendChild(el("rect", { x: m.l + 8, y: m.t + 4, width: 10, height: 10, class: "bar-size" }));
  svg.appendChild(el("text", { x: m.l + 22, y: m.t + 13, class: "axis" }, "size"));
  svg.appendChild(el("circle", { cx: m.l + 70, cy: m.t + 9, r: 4, class: "dot-duration" }));
  svg.appendChild(el("text", { x: m.l + 78, y: m.t + 13, class: "axis" }, "duration"));
  return svg;
}
