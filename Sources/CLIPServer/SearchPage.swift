/// The page at `/`: plain HTML, CSS and JavaScript in the binary (no CDN; works offline). It calls
/// `/v1/search` with the typed query or a dropped image, and shows the thumbnails with scores above
/// the cut-off. With a token, the page asks for it once (kept in this browser's localStorage) and
/// sends it on every call, thumbnails included (fetched, then shown from blob URLs).
enum SearchPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SwiftCLIP search</title>
<style>
  :root { --fg: #1d232a; --muted: #67717c; --line: #d8dde3; --accent: #2d6cdf; --bg: #f6f7f9; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 16px 24px; background: #fff; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
  h1 { font-size: 18px; margin: 0 12px 0 0; }
  form { display: flex; gap: 8px; flex: 1 1 420px; }
  input[type=search] { flex: 1; padding: 8px 10px; font-size: 15px; border: 1px solid var(--line); border-radius: 6px; }
  button { padding: 8px 14px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; font-size: 15px; cursor: pointer; }
  label { color: var(--muted); font-size: 13px; display: flex; gap: 6px; align-items: center; }
  #drop { border: 1px dashed var(--line); border-radius: 6px; padding: 7px 12px; color: var(--muted); font-size: 13px; cursor: pointer; }
  #drop.over { border-color: var(--accent); color: var(--accent); }
  #status { padding: 10px 24px; color: var(--muted); font-size: 13px; min-height: 20px; }
  #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; padding: 0 24px 24px; }
  figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  figure img { width: 100%; aspect-ratio: 1; object-fit: cover; display: block; background: #eef0f3; }
  figcaption { padding: 6px 8px; font-size: 12px; display: flex; justify-content: space-between; gap: 6px; }
  figcaption span.path { color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .hidden { display: none; }
</style>
</head>
<body>
<header>
  <h1>SwiftCLIP</h1>
  <form id="form">
    <input id="query" type="search" name="q" placeholder="Describe a photo…" autocomplete="off" autofocus>
    <button id="go" type="submit">Search</button>
  </form>
  <span id="drop" tabindex="0">or drop / choose an image<input id="file" type="file" accept="image/jpeg,image/png" class="hidden"></span>
  <label>cut-off <input id="cutoff" type="range" min="-1" max="1" step="0.01" value="-1"><output id="cutoffValue">-1.00</output></label>
  <label>top <input id="top" type="number" min="1" max="1000" value="24" style="width: 64px"></label>
</header>
<div id="status">Type a query or drop an image.</div>
<main id="grid"></main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let results = [];
let objectURLs = [];

function token() { return localStorage.getItem("swiftclip-token") || ""; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}
async function call(url, options) {
  let response = await fetch(url, options);
  if (response.status === 401) {
    const t = prompt("This server needs its access token:");
    if (t) { localStorage.setItem("swiftclip-token", t); options.headers = headers(options.extraHeaders); response = await fetch(url, options); }
  }
  return response;
}
async function search(body, label) {
  $("status").textContent = "Searching " + label + "…";
  body.top_k = Math.max(1, Math.min(1000, parseInt($("top").value, 10) || 24));
  const response = await call("/v1/search", { method: "POST", headers: headers({ "Content-Type": "application/json" }),
                                               extraHeaders: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) { $("status").textContent = (json.error && json.error.message) || ("HTTP " + response.status); results = []; render(); return; }
  results = json.results || [];
  render();
}
function render() {
  objectURLs.forEach(URL.revokeObjectURL); objectURLs = [];
  const cutoff = parseFloat($("cutoff").value);
  const shown = results.filter((r) => r.score >= cutoff);
  $("status").textContent = shown.length + " of " + results.length + " results at or above " + cutoff.toFixed(2);
  const grid = $("grid");
  grid.replaceChildren();
  for (const r of shown) {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.alt = r.path; img.title = r.path; img.className = "result";
    const caption = document.createElement("figcaption");
    const path = document.createElement("span"); path.className = "path"; path.textContent = r.path.split("/").pop();
    const score = document.createElement("span"); score.className = "score"; score.textContent = r.score.toFixed(3);
    caption.append(path, score); figure.append(img, caption); grid.append(figure);
    fetch(r.thumbnail, { headers: headers() }).then((x) => x.ok ? x.blob() : Promise.reject(x.status)).then((blob) => {
      const url = URL.createObjectURL(blob); objectURLs.push(url); img.src = url;
      img.addEventListener("click", () => window.open(r.image, "_blank"));
    }).catch(() => { img.alt = "thumbnail unavailable"; });
  }
}
function searchImage(file) {
  const reader = new FileReader();
  reader.onload = () => search({ image: reader.result.split(",")[1] }, "by image " + file.name);
  reader.readAsDataURL(file);
}
$("form").addEventListener("submit", (e) => { e.preventDefault(); const q = $("query").value.trim(); if (q) search({ text: q }, "“" + q + "”"); });
$("cutoff").addEventListener("input", () => { $("cutoffValue").textContent = parseFloat($("cutoff").value).toFixed(2); render(); });
$("drop").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", () => { if ($("file").files[0]) searchImage($("file").files[0]); });
for (const target of [document.body, $("drop")]) {
  target.addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
  target.addEventListener("dragleave", () => $("drop").classList.remove("over"));
  target.addEventListener("drop", (e) => { e.preventDefault(); $("drop").classList.remove("over"); if (e.dataTransfer.files[0]) searchImage(e.dataTransfer.files[0]); });
}
const initial = new URLSearchParams(location.search).get("q");
if (initial) { $("query").value = initial; search({ text: initial }, "“" + initial + "”"); }
</script>
</body>
</html>
"""#
}
