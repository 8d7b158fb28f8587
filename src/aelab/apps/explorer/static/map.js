// aelab explore, the map: the codes in 2-D (the code itself, PCA or t-SNE), the current code
// as a cross, a click or a drag decoding the point below it. Shares explore.js's globals
// (classic scripts, loaded after it; explore.js starts the page once both have run).
"use strict";

// ---- the map ------------------------------------------------------------------------------
const map = { scale: null, hover: -1, dragging: false };

function colour(label, alpha) {
  if (label === null || label === undefined) return `hsla(210, 60%, 45%, ${alpha})`;
  return `hsla(${(label * 137.508) % 360}, 65%, 45%, ${alpha})`;
}

function projectCode(code) {  // the current code on the map, where the map has a way back
  const p = state.points;
  if (!p || !p.invertible) return null;
  if (p.method === "code") return [code[0], code.length > 1 ? code[1] : 0];
  const { mean, components } = p.projection;
  const c = Array.from(code, (v, i) => v - mean[i]);
  return [dot(c, components[0]), dot(c, components[1])];
}

let mapFrame = 0;
function scheduleMap() {  // at most one redraw a frame, however fast the sliders move
  if (!mapFrame) mapFrame = requestAnimationFrame(() => { mapFrame = 0; drawMap(); });
}

function drawMap() {
  const canvas = $("map");
  const p = state.points;
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio)) {
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!p) return;
  const xs = p.x, ys = p.y;
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const padX = (x1 - x0 || 1) * 0.08, padY = (y1 - y0 || 1) * 0.08;
  x0 -= padX; x1 += padX; y0 -= padY; y1 += padY;
  map.scale = {
    toPx: (x, y) => [((x - x0) / (x1 - x0)) * w, h - ((y - y0) / (y1 - y0)) * h],
    toData: (px, py) => [x0 + (px / w) * (x1 - x0), y0 + ((h - py) / h) * (y1 - y0)],
  };
  for (let i = 0; i < xs.length; i++) {
    const [px, py] = map.scale.toPx(xs[i], ys[i]);
    const held = i >= p.n_train;
    ctx.beginPath();
    ctx.arc(px, py, held ? 3.5 : 2.2, 0, 2 * Math.PI);
    ctx.fillStyle = colour(p.label ? p.label[i] : null, held ? 0.95 : 0.55);
    ctx.fill();
    if (held) { ctx.strokeStyle = "#111"; ctx.lineWidth = 1; ctx.stroke(); }
  }
  const here = state.code && projectCode(state.code);
  if (here) {
    const [px, py] = map.scale.toPx(here[0], here[1]);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(px - 8, py); ctx.lineTo(px + 8, py);
    ctx.moveTo(px, py - 8); ctx.lineTo(px, py + 8); ctx.stroke();
  }
}

function nearest(px, py, within) {
  const p = state.points;
  let best = -1, bestD = within * within;
  for (let i = 0; i < p.x.length; i++) {
    const [qx, qy] = map.scale.toPx(p.x[i], p.y[i]);
    const d = (qx - px) ** 2 + (qy - py) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

function decodeAt(px, py, timeStamp) {
  const p = state.points;
  if (!p || !map.scale) return;
  if (!p.invertible) {  // t-SNE has no way back: the nearest image instead
    const i = nearest(px, py, Infinity);
    if (i >= 0) pickImage(i);
    return;
  }
  const [x, y] = map.scale.toData(px, py);
  let code;
  if (p.method === "code") code = state.meta.latent_dim === 1 ? [x] : [x, y];
  else {
    const { mean, components } = p.projection;
    code = mean.map((m, j) => m + x * components[0][j] + y * components[1][j]);
  }
  state.code = Float64Array.from(code);
  showCode();
  requestDecode(timeStamp);
}

function thumbnail(el, i, side) {  // image i of the sprite as el's background, about side px
  const [tw, th] = state.meta.thumbnail;
  const columns = state.meta.sprite_columns;
  const s = Math.max(1, Math.floor(side / Math.max(tw, th)));
  Object.assign(el.style, {
    width: `${tw * s}px`, height: `${th * s}px`,
    backgroundImage: `url(${api("/sprite.png")})`,
    backgroundSize: `${columns * tw * s}px auto`,
    backgroundPosition: `-${(i % columns) * tw * s}px -${Math.floor(i / columns) * th * s}px`,
  });
}

function showTooltip(i, px, py) {
  const tip = $("tooltip");
  if (i < 0) { tip.hidden = true; return; }
  const p = state.points;
  thumbnail($("tooltip-image"), i, 64);
  const label = p.label ? `label ${p.label[i]}` : "";
  $("tooltip-text").textContent = `${i >= p.n_train ? "held-out" : "training"} ${label}`;
  tip.style.left = `${px + 12}px`; tip.style.top = `${py + 12}px`;
  tip.hidden = false;
}

function canvasPoint(e) {
  const r = $("map").getBoundingClientRect();
  return [e.clientX - r.left, e.clientY - r.top];
}

const mapCanvas = $("map");
mapCanvas.addEventListener("pointerdown", (e) => {
  map.dragging = true;
  mapCanvas.setPointerCapture(e.pointerId);
  const [px, py] = canvasPoint(e);
  decodeAt(px, py, e.timeStamp);
});
mapCanvas.addEventListener("pointermove", (e) => {
  if (!state.points || !map.scale) return;
  const [px, py] = canvasPoint(e);
  if (map.dragging && state.points.invertible) { decodeAt(px, py, e.timeStamp); return; }
  showTooltip(nearest(px, py, 8), px, py);
});
mapCanvas.addEventListener("pointerup", () => { map.dragging = false; });
mapCanvas.addEventListener("pointerleave", () => showTooltip(-1));
mapCanvas.addEventListener("keydown", (e) => {  // arrow keys move the cross by 2% of the map
  const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (!(e.key in steps) || !map.scale || !state.points.invertible) return;
  e.preventDefault();
  const here = projectCode(state.code);
  const [px, py] = map.scale.toPx(here[0], here[1]);
  const [dx, dy] = steps[e.key];
  decodeAt(px + dx * mapCanvas.clientWidth * 0.02, py + dy * mapCanvas.clientHeight * 0.02, e.timeStamp);
});
window.addEventListener("resize", drawMap);

async function loadPoints(method) {
  $("map-hint").textContent = method === "tsne" ? "computing t-SNE…" : "";
  try {
    state.points = await fetchJSON(api(`/points?method=${method}`));
    const p = state.points;
    $("map-hint").textContent = p.invertible
      ? "Click or drag anywhere to decode that point" +
        (p.method === "pca" ? " (through PCA's inverse)." : ".")
      : "t-SNE has no way back: a click picks the nearest image.";
    scheduleMap();
  } catch (e) { showError(e.message); }
}
$("method").addEventListener("change", (e) => loadPoints(e.target.value));
