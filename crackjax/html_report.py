"""report.html: one page per prediction run that an inspector opens from disk (no server, no network).

The page holds the summary (files, flagged, passed, errors, threshold and its calibration, model, time), a table
of every file sorted by score with an inline thumbnail, the verdict and its cracks (how many, the longest's
length, the widest's width), when and where the photo was taken where its EXIF says (a click on a column header
sorts by it), filters (all / flagged / passed / errors; taken from / to; with a GPS position only) and, on a
click on a row, the image's four-panel overlay and its full-resolution red mask (overlays/ and masks/ beside the
page). Thumbnails are embedded (base64 JPEG), so the table reads without the image folders.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os

from crackjax import files

CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em} .summary{display:flex;gap:1.5em;flex-wrap:wrap;margin:.5em 0 1em}
.summary div{background:#f4f4f4;padding:.4em .8em;border-radius:6px} .summary b{font-size:1.2em}
.filters button{margin-right:.4em;padding:.35em .9em;border:1px solid #999;border-radius:5px;background:#fff;cursor:pointer}
.filters button.on{background:#333;color:#fff}
table{border-collapse:collapse;margin-top:.8em;width:100%}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left} th.sort{cursor:pointer;text-decoration:underline dotted}
tr.row{cursor:pointer} tr.row:hover{background:#eef4ff} img.thumb{height:48px;display:block}
.v{font-weight:bold;padding:.1em .5em;border-radius:4px} .v-crack{background:#d33;color:#fff} .v-good{background:#2a7;color:#fff}
.v-error{background:#888;color:#fff}
#viewer{display:none;position:fixed;inset:0;background:rgba(0,0,0,.82);padding:2em;overflow:auto}
#viewer img{max-width:100%;margin-bottom:1em;display:block}
#v-mask{background:repeating-conic-gradient(#666 0 25%,#999 0 50%) 0 0/16px 16px}
#viewer .close{color:#fff;float:right;font-size:1.5em;cursor:pointer}
#viewer h2{color:#fff;font-size:1em}
"""

JS = """
let kindNow='all';
function show(kind){
  kindNow=kind;
  document.querySelectorAll('.filters button').forEach(b=>b.classList.toggle('on', b.dataset.kind===kind));
  applyFilters();
}
function applyFilters(){
  const from=document.getElementById('f-from').value.trim(), to=document.getElementById('f-to').value.trim();
  const located=document.getElementById('f-gps').checked;
  document.querySelectorAll('tr.row').forEach(r=>{
    const t=r.dataset.taken; let ok=kindNow==='all'||r.dataset.kind===kindNow;
    if(from) ok=ok&&t!==''&&t>=from;
    if(to) ok=ok&&t!==''&&t.slice(0,to.length)<=to;
    if(located) ok=ok&&r.dataset.lat!=='';
    r.style.display=ok?'':'none';
  });
}
function openRow(r){
  if(r.dataset.kind==='errors') return;
  document.getElementById('v-title').textContent=r.dataset.file+' - '+r.dataset.verdict+' ('+r.dataset.score+')';
  document.getElementById('v-overlay').src=r.dataset.overlay;
  document.getElementById('v-mask').src=r.dataset.mask;
  document.getElementById('viewer').style.display='block';
}
function sortBy(col, numeric){
  const body=document.querySelector('tbody'); const rows=[...body.querySelectorAll('tr.row')];
  const th=document.querySelectorAll('th')[col]; const down=th.dataset.dir!=='down'; th.dataset.dir=down?'down':'up';
  const key=r=>{const t=r.children[col].dataset.v ?? r.children[col].textContent;
    return numeric?(t===''?-Infinity:parseFloat(t)):t;};
  rows.sort((a,b)=>{const x=key(a),y=key(b); return (x<y?-1:x>y?1:0)*(down?-1:1);});
  rows.forEach(r=>body.appendChild(r));
}
function closeViewer(){document.getElementById('viewer').style.display='none';}
document.addEventListener('keydown',e=>{if(e.key==='Escape')closeViewer();});
"""


# per photo, from predictions.csv: how many cracks its red mask holds, the longest's length, the widest's width
CRACK_CELLS = ("cracks", "longest_px", "widest_px", "longest_mm", "widest_mm")
PLACE_CELLS = ("taken", "latitude", "longitude")  # the photo's EXIF capture time and GPS position ('' when absent)


def _cell(v) -> str:
  return html.escape(v or "")


def _thumb(out_dir: str, name: str) -> str:
  path = os.path.join(out_dir, "thumbs", name.removesuffix(".png") + ".jpg")
  if not os.path.exists(path):
    return ""
  with open(path, "rb") as f:
    return "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()


def write(out_dir: str, name_of) -> str:
  """Writes <out_dir>/report.html from predictions.csv and summary.json; name_of(file) -> its overlay/mask name."""
  with open(os.path.join(out_dir, "predictions.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  with open(os.path.join(out_dir, "summary.json")) as f:
    summary = json.load(f)
  scored = sorted((r for r in rows if r["score"]), key=lambda r: -float(r["score"]))
  errors = [r for r in rows if not r["score"]]
  n_crack = sum(r["verdict"] == "crack" for r in scored)
  cells = []
  for r in scored + errors:
    kind = "errors" if not r["score"] else ("flagged" if r["verdict"] == "crack" else "passed")
    name = name_of(r["file"])
    verdict = r["verdict"] or "error"
    score = f"{float(r['score']):.4g}" if r["score"] else ""
    thumb = _thumb(out_dir, name) if r["score"] else ""
    e = html.escape
    cells.append(
      f'<tr class="row" data-kind="{kind}" data-file="{e(r["file"])}" data-verdict="{verdict}" data-score="{score}" '
      f'data-taken="{e(r.get("taken") or "")}" data-lat="{e(r.get("latitude") or "")}" '
      f'data-overlay="overlays/{e(name)}" data-mask="masks/{e(name)}" onclick="openRow(this)">'
      f"<td>{f'<img class=thumb src={thumb!r}>' if thumb else ''}</td><td>{e(r['file'])}</td><td>{score}</td>"
      f'<td><span class="v v-{verdict}">{verdict}</span></td>'
      + "".join(f'<td class="{k}" data-v="{e(r.get(k) or "")}">{_cell(r.get(k))}</td>' for k in CRACK_CELLS + PLACE_CELLS)
      + f"<td>{e(r['error'])}</td></tr>"
    )
  model = summary.get("model", {})
  boxes = [
    ("files", len(rows)),
    ("flagged (crack)", n_crack),
    ("passed (good)", len(scored) - n_crack),
    ("errors", len(errors)),
    ("cracks measured", summary.get("cracks", {}).get("count", "-")),
    ("threshold", f"{summary['threshold']:.4g}"),
    ("time", f"{summary.get('seconds', 0):.0f} s"),
  ]
  page = f"""<!doctype html><html><head><meta charset="utf-8"><title>crackjax report: {html.escape(summary["input"])}</title>
<style>{CSS}</style></head><body>
<h1>crackjax inspection report</h1>
<div>{html.escape(summary["input"])} &middot; model: {html.escape(model.get("description", model.get("kind", "")))}
 &middot; threshold from {html.escape(summary.get("threshold_source", ""))}</div>
<div class="summary">{"".join(f"<div>{k}<br><b>{v}</b></div>" for k, v in boxes)}</div>
<div class="filters">
<button data-kind="all" class="on" onclick="show('all')">all ({len(rows)})</button>
<button data-kind="flagged" onclick="show('flagged')">flagged ({n_crack})</button>
<button data-kind="passed" onclick="show('passed')">passed ({len(scored) - n_crack})</button>
<button data-kind="errors" onclick="show('errors')">errors ({len(errors)})</button>
&nbsp; taken from <input id="f-from" size="16" placeholder="2026-05-04" oninput="applyFilters()">
to <input id="f-to" size="16" placeholder="2026-05-04 18:00" oninput="applyFilters()">
<label><input type="checkbox" id="f-gps" onchange="applyFilters()"> with a GPS position only</label>
</div>
<table><thead><tr><th></th><th class="sort" onclick="sortBy(1,false)">file</th>
<th class="sort" onclick="sortBy(2,true)">score</th>
<th>verdict</th><th class="sort" onclick="sortBy(4,true)">cracks</th><th class="sort" onclick="sortBy(5,true)">longest (px)</th>
<th class="sort" onclick="sortBy(6,true)">widest (px)</th><th class="sort" onclick="sortBy(7,true)">longest (mm)</th>
<th class="sort" onclick="sortBy(8,true)">widest (mm)</th><th class="sort" onclick="sortBy(9,false)">taken</th>
<th class="sort" onclick="sortBy(10,true)">latitude</th><th class="sort" onclick="sortBy(11,true)">longitude</th>
<th>error</th></tr></thead>
<tbody>{"".join(cells)}</tbody></table>
<div id="viewer"><span class="close" onclick="closeViewer()">&times;</span><h2 id="v-title"></h2>
<img id="v-overlay" alt="overlay"><h2>red mask at the photo's own resolution</h2><img id="v-mask" alt="red mask"></div>
<script>{JS}</script></body></html>"""
  path = os.path.join(out_dir, "report.html")
  tmp = path + ".tmp"
  with files.writing(path), open(tmp, "w") as f:
    f.write(page)
  os.replace(tmp, path)
  return path
