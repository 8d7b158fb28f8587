// aelab explore: sliders, a map of the codes (map.js), images to start from. Sends codes,
// gets PNGs.
// window.aelab exposes the state a test or a benchmark reads (latencies of each input event
// from the event to the new image on screen, in ms; idle: no decode in flight or waiting).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null, meta: null, code: null, base: null, baseCoords: null, coords: null, shown: 0,
  points: null, original: null, a: null, b: null, seed: 1, maps: null, groups: null,
  along: null,  // {group, t, start, code}: the code the direction slider set, and how
  inflight: false, dirty: false, waiting: [], liveUrl: null,
};
window.aelab = { latencies: [], decodes: 0, errors: 0, ready: false, unusual: null };
Object.defineProperty(window.aelab, "idle", { get: () => !state.inflight && !state.dirty });

function api(path) { return `/api/models/${encodeURIComponent(state.model)}${path}`; }

async function fetchJSON(url, options) {
  const r = await fetch(url, options);
  const body = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(body.error || `${r.status}`);
  return body;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
  if (message) window.aelab.errors += 1;
}

// ---- the code and its sliders -------------------------------------------------------------
function fixed(v) { return (Math.abs(v) < 5e-4 ? 0 : v).toFixed(3); }  // never "-0.000"

function dot(a, b) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; }

function coordsOf(code) {  // the code's coordinates on the PCA sliders' components
  const { mean, components } = state.meta.pca;
  const centred = code.map((v, i) => v - mean[i]);
  return components.map((c) => dot(centred, c));
}

function sliderValues() {
  return state.meta.mode === "pca" ? coordsOf(state.code) : Array.from(state.code);
}

function setCode(code, { from = null } = {}) {
  state.code = Float64Array.from(code);
  showCode();
  requestDecode(from);
}

function showCode() {  // the sliders at state.code (and, for PCA sliders, moves start from it)
  if (state.meta.mode === "pca") {
    state.base = Float64Array.from(state.code);
    state.baseCoords = coordsOf(state.base);
    state.coords = state.baseCoords.slice();
  }
  const values = sliderValues();
  document.querySelectorAll("#sliders input").forEach((input, i) => {
    input.value = values[i];
    input.nextElementSibling.value = fixed(values[i]);
  });
  scheduleMap();
}

function onSlider(event) {
  const i = Number(event.target.dataset.index);
  const v = Number(event.target.value);
  event.target.nextElementSibling.value = fixed(v);
  if (state.meta.mode === "pca") {
    // only what a slider moved counts: an unmoved slider shows its coordinate rounded to its
    // step (or clamped to its range), which must not move the code
    const comps = state.meta.pca.components;
    state.coords[i] = v;
    const code = Float64Array.from(state.base);
    state.coords.forEach((c, k) => {
      if (k >= state.shown) return;
      const d = c - state.baseCoords[k];
      if (d !== 0) for (let j = 0; j < code.length; j++) code[j] += d * comps[k][j];
    });
    state.code = code;
  } else {
    state.code[i] = v;
  }
  scheduleMap();
  requestDecode(event.timeStamp);
}

function buildSliders() {
  const box = $("sliders");
  box.textContent = "";
  const m = state.meta;
  m.sliders.forEach((s, i) => {
    const row = document.createElement("div");
    row.className = "slider" + (s.dead ? " dead" : "");
    row.hidden = m.mode === "pca" && i >= state.shown;
    const id = `slider-${i}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = s.label + (s.dead ? " (dead)" : "");
    if (s.dead) label.title = "this unit never varies over the training images: it carries nothing";
    const input = document.createElement("input");
    Object.assign(input, { type: "range", id, min: s.low, max: s.high, value: s.value });
    input.step = String((s.high - s.low) / 200);
    input.dataset.index = i;
    input.addEventListener("input", onSlider);
    const out = document.createElement("output");
    out.htmlFor = id;
    out.value = fixed(s.value);
    row.append(label, input, out);
    box.append(row);
  });
  const hint = m.mode === "pca"
    ? `${m.latent_dim} code units: a slider per principal component of the training codes ` +
      "(the notebook's approach 2); moving one moves the code along that component."
    : m.variational ? "Ranges: the prior N(0, 1), ±3σ."
    : "Ranges: what each unit takes over the training images.";
  $("slider-hint").textContent = hint + (m.dead_units ? ` ${m.dead_units} dead unit(s) marked.` : "");
}

function buildComponentPicker() {
  const m = state.meta;
  const picker = $("components");
  picker.textContent = "";
  $("components-picker").hidden = m.mode !== "pca";
  if (m.mode !== "pca") { state.shown = m.sliders.length; return; }
  state.shown = m.default_components;
  for (let k = 1; k <= m.sliders.length; k++) picker.add(new Option(String(k), String(k)));
  picker.value = String(state.shown);
}

$("components").addEventListener("change", (e) => {
  state.shown = Number(e.target.value);
  document.querySelectorAll("#sliders .slider").forEach((row, i) => { row.hidden = i >= state.shown; });
  setCode(state.code);
});

// ---- decoding: one request in flight; moves made meanwhile go in the next one -------------
function requestDecode(timeStamp) {
  state.waiting.push(timeStamp ?? performance.now());
  state.dirty = true;
  pump();
}

async function pump() {
  if (state.inflight || !state.dirty) return;
  state.inflight = true;
  state.dirty = false;
  const waiting = state.waiting;
  state.waiting = [];
  try {
    const a = state.along;  // the direction slider's code: the server moves it along the group's
    const moved = a && a.code === state.code;
    const r = await fetch(api(moved ? "/along" : "/decode"), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(moved ? { group: a.group, t: a.t, code: Array.from(a.start) }
        : { code: Array.from(state.code) }),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error || `decode failed: ${r.status}`);
    }
    const blob = await r.blob();
    const bitmap = await createImageBitmap(blob);
    drawBitmap($("live"), bitmap);
    drawBitmap($("along-live"), bitmap);  // beside the direction slider, where it is moved
    const now = performance.now();
    waiting.forEach((t) => window.aelab.latencies.push(now - t));
    window.aelab.decodes += 1;
    if (state.liveUrl) URL.revokeObjectURL(state.liveUrl);
    state.liveUrl = URL.createObjectURL(blob);
    $("download").href = state.liveUrl;
    drawErrorMap();
    const l = window.aelab.latencies;
    $("latency").textContent = `decoded in ${(now - waiting[waiting.length - 1]).toFixed(0)} ms ` +
      `(${l.length} so far)`;
    showError("");
  } catch (e) {
    showError(e.message);
  } finally {
    state.inflight = false;
    pump();
  }
}

// the image canvases are read back (error map, interpolation ends): one kind of context each
function context(canvas) { return canvas.getContext("2d", { willReadFrequently: true }); }

function drawBitmap(canvas, bitmap) {
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  context(canvas).drawImage(bitmap, 0, 0);
}

function pixels(canvas) { return context(canvas).getImageData(0, 0, canvas.width, canvas.height).data; }

function heat(t) {  // black -> red -> yellow -> white
  return [Math.min(255, 765 * t), Math.max(0, Math.min(255, 765 * t - 255)),
    Math.max(0, 765 * t - 510)];
}

function drawErrorMap() {
  const live = $("live"), orig = $("original"), map = $("error-map");
  if (!state.original || orig.width !== live.width || orig.height !== live.height) {
    map.width = 1; map.height = 1; $("error-value").textContent = ""; return;
  }
  const a = pixels(orig), b = pixels(live);
  map.width = live.width; map.height = live.height;
  const ctx = context(map);
  const out = ctx.createImageData(map.width, map.height);
  let total = 0;
  for (let p = 0; p < a.length; p += 4) {
    const d = (Math.abs(a[p] - b[p]) + Math.abs(a[p + 1] - b[p + 1]) + Math.abs(a[p + 2] - b[p + 2])) / 765;
    total += d;
    const [r, g, bl] = heat(Math.min(1, 2 * d));
    out.data[p] = r; out.data[p + 1] = g; out.data[p + 2] = bl; out.data[p + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  $("error-value").textContent = `mean ${(total / (a.length / 4)).toFixed(3)}`;
}

// ---- starting points: an image (held-out or uploaded), random codes, the mean -------------
async function loadImage(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  return img;
}

async function startFrom(result) {
  const img = await loadImage(result.original);
  const orig = $("original");
  orig.width = img.naturalWidth; orig.height = img.naturalHeight;
  context(orig).drawImage(img, 0, 0);
  $("reconstruction").src = result.reconstruction;
  state.original = true;
  setCode(result.code);
}

async function pickImage(index) {
  try { await startFrom(await fetchJSON(api(`/images/${index}`))); } catch (e) { showError(e.message); }
  const m = state.meta;
  const which = index >= m.n_train ? `held-out image ${index - m.n_train + 1}`
    : `training image ${index + 1}`;
  await showUnusual(() => fetchJSON(api(`/anomaly/${index}`)), which, String(index));
}

// ---- how unusual: the current image's calibrated map on the fixed scale ---------------------
async function loadMaps() {  // whether this model gives calibrated maps (calibrated on first ask)
  state.maps = null;
  $("unusual-body").hidden = true;
  const why = $("unusual-why");
  why.hidden = false;
  why.textContent = "Calibrating each pixel on the run's normal images…";
  try { state.maps = await fetchJSON(api("/anomaly")); } catch (e) {
    state.maps = { available: false, why: e.message };
  }
  if (!state.maps.available) { why.textContent = state.maps.why; return; }
  why.hidden = true;
  $("unusual-scale").src = state.maps.scale;
  $("unusual-legend").textContent = state.maps.legend;
  $("unusual-guarantee").textContent = state.maps.guarantee;
}

async function showUnusual(request, which, key) {
  if (!state.maps || !state.maps.available) return;
  const model = state.model;
  let r;
  try { r = await request(); } catch (e) { showError(`how unusual: ${e.message}`); return; }
  if (model !== state.model) return;  // the model changed meanwhile
  $("unusual-image").src = r.image;
  $("unusual-map").src = r.map;
  $("unusual-which").textContent = which;
  const v = $("unusual-verdict");
  v.className = r.outlier ? "outlier" : "";
  v.textContent = `score ${r.score.toPrecision(4)}, p-value ${r.p_value.toPrecision(3)}: ` +
    (r.outlier ? `flagged at fpr=${r.fpr}` : `not flagged at fpr=${r.fpr}`) +
    ` (threshold ${r.threshold.toPrecision(4)})`;
  $("unusual-explain").textContent = `Where: ${r.explanation.text}.`;
  $("unusual-body").hidden = false;
  window.aelab.unusual = key;
}

$("upload").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const headers = { "Content-Type": file.type || "application/octet-stream" };
  try {
    await startFrom(await fetchJSON(api("/encode"), { method: "POST", body: file, headers }));
  } catch (err) { showError(`${file.name}: ${err.message}`); return; }
  await showUnusual(() => fetchJSON(api("/anomaly"), { method: "POST", body: file, headers }),
    `uploaded: ${file.name}`, "upload");
});

async function randomCode(approach) {
  try {
    const r = await fetchJSON(api(`/random?approach=${approach}&seed=${state.seed++}`));
    setCode(r.code);
  } catch (e) { showError(e.message); }
}
$("random-units").addEventListener("click", () => randomCode("units"));
$("random-pca").addEventListener("click", () => randomCode("pca"));
$("mean").addEventListener("click", () => setCode(state.meta.mean_code));
$("download").addEventListener("click", (e) => { if (!state.liveUrl) e.preventDefault(); });

// ---- interpolation ------------------------------------------------------------------------
function setEnd(which) {
  state[which] = Float64Array.from(state.code);
  const live = $("live"), end = $(`end-${which}`);
  end.width = live.width; end.height = live.height;
  context(end).drawImage(live, 0, 0);
  $("interp").disabled = !(state.a && state.b);
}
$("set-a").addEventListener("click", () => setEnd("a"));
$("set-b").addEventListener("click", () => setEnd("b"));
$("interp").addEventListener("input", (e) => {
  const t = Number(e.target.value);
  $("interp-value").value = t.toFixed(2);
  if (!(state.a && state.b)) return;
  state.code = state.a.map((v, i) => (1 - t) * v + t * state.b[i]);
  showCode();
  requestDecode(e.timeStamp);
});

// ---- attribute directions: the current code moved t times along a group's direction --------
async function loadGroups() {
  state.groups = await fetchJSON(api("/groups"));
  state.along = null;
  const g = state.groups, picker = $("group");
  picker.textContent = "";
  $("groups-body").hidden = !g.available;
  if (!g.available) { $("groups-hint").textContent = g.why; return; }
  g.groups.forEach((x) => picker.add(new Option(`${x.name} (${x.n_images})`, x.name)));
  const source = g.source === "labels" ? "the data's labels" : g.source;
  $("groups-hint").textContent = `Groups from ${source}. A group's direction: the mean code of ` +
    `its images minus the mean code of all grouped images (on the ${g.images} images). The ` +
    `slider moves the current code from −${g.reach} to +${g.reach} times it.`;
  $("along").value = 0; $("along-value").value = "+0.00";
}
$("group").addEventListener("change", () => {  // a new group starts from the current code
  const back = state.along && state.along.code === state.code ? state.along.start : null;
  state.along = null;
  $("along").value = 0; $("along-value").value = "+0.00";
  if (back) setCode(back);
});
$("along").addEventListener("input", (e) => {
  const g = state.groups, t = Number(e.target.value);
  $("along-value").value = `${t >= 0 ? "+" : ""}${t.toFixed(2)}`;
  if (!g || !g.available) return;
  const i = g.groups.findIndex((x) => x.name === $("group").value);
  if (i < 0) return;
  // moved elsewhere since (sliders, map, an image): start from where the code is now
  const start = state.along && state.along.code === state.code ? state.along.start
    : Float64Array.from(state.code);
  state.code = start.map((v, k) => v + t * g.directions[i][k]);
  state.along = { group: g.groups[i].name, t, start, code: state.code };
  showCode();
  requestDecode(e.timeStamp);
});

// ---- held-out thumbnails and the model ----------------------------------------------------
function buildHeldout() {
  const box = $("heldout");
  box.textContent = "";
  const m = state.meta;
  for (let k = 0; k < m.n_heldout; k++) {
    const i = m.n_train + k;
    const b = document.createElement("button");
    b.type = "button"; b.className = "thumb"; b.setAttribute("role", "listitem");
    b.setAttribute("aria-label", `held-out image ${k + 1}`);
    thumbnail(b, i, 36);
    b.addEventListener("click", () => pickImage(i));
    box.append(b);
  }
}

async function buildUnits() {  // a button per unit, most useful first; a click shows its page
  const box = $("units");
  box.textContent = "";
  $("unit-page").hidden = true;
  const { units } = await fetchJSON(api("/units"));
  for (const u of units) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "unit"; b.setAttribute("role", "listitem");
    b.dataset.unit = String(u.unit);
    b.textContent = `${u.unit + 1}${u.dead ? " (dead)" : ""}`;
    b.title = `unit ${u.unit + 1}: usefulness ${u.usefulness.toPrecision(3)}, ` +
      `density ${u.density.toFixed(2)}`;
    b.addEventListener("click", () => {
      const img = $("unit-page");
      img.onload = () => { img.hidden = false; };
      img.onerror = () => showError(`unit ${u.unit + 1}: its page could not be drawn`);
      img.src = api(`/units/${u.unit}.png`);
    });
    box.append(b);
  }
}

async function loadModel(name) {
  state.model = name;
  window.aelab.ready = false;
  state.meta = await fetchJSON(api(""));
  state.original = null; state.a = null; state.b = null; state.points = null;
  $("interp").disabled = true;
  const m = state.meta;
  $("summary").textContent = `${m.name}: ${m.family}, ${m.latent_dim}-unit code, ` +
    `${m.image_shape.join("×")} images, ${m.n_train} training and ${m.n_heldout} held-out`;
  buildComponentPicker();
  buildSliders();
  buildHeldout();
  const method = $("method");
  method.textContent = "";
  const names = { code: "the code itself", pca: "PCA of the codes", tsne: "t-SNE of the codes" };
  m.embeddings.forEach((e) => method.add(new Option(names[e], e)));
  await loadPoints(m.embeddings[0]);
  window.aelab.unusual = null;
  await loadMaps();
  if (m.n_heldout) await pickImage(m.n_train);
  else setCode(m.mean_code);
  await buildUnits();
  await loadGroups();
  window.aelab.ready = true;
}

$("model").addEventListener("change", (e) => loadModel(e.target.value).catch((err) => showError(err.message)));

// started once every deferred script has run (map.js defines what loadModel calls)
document.addEventListener("DOMContentLoaded", async () => {
  try {
    const { models } = await fetchJSON("/api/models");
    const picker = $("model");
    models.forEach((n) => picker.add(new Option(n, n)));
    $("model-picker").hidden = models.length < 2;
    await loadModel(models[0]);
  } catch (e) { showError(e.message); }
});
