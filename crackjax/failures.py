"""Failure cases by kind (`--mode=failures`), for a model already evaluated in its workdir.

Kinds, each with how often it fails at the evaluation's own threshold and a gallery of its failures (image, map,
overlay, red mask), worst first:
- thin cracks and faint cracks (test images with masks): the third of cracked images with the narrowest crack
  (width from the mask: twice the distance-transform value on the crack's ridge, minus one) and the third with
  the lowest contrast (mean luminance of a 3-pixel ring around the crack minus that inside it, in [0, 1]);
  failure = a miss;
- stains, water marks and shadows (the synthetic data's distractors, replayed from each image's seed): good
  images carrying one; failure = a false alarm;
- domain shift: every other root the model was evaluated on (<workdir>/eval/<name>/ with another data root),
  missed cracks and false alarms there at the home root's threshold (the model as deployed), against home's, and
  that root's own thin and faint thirds where it has masks.
Writes <workdir>/failures/failures.json, failures.md (the table) and one <kind>.png gallery per kind.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import re

import ml_collections
import numpy as np
from scipy import ndimage

from crackjax import anomaly, calibration, plots, report, synth
from crackjax.data import builders, pipeline, synthetic
from crackjax.errors import UserError
from crackjax.evaluate import split_key
from crackjax.scorer import Scorer, compute_maps, tiling

log = logging.getLogger(__name__)
PLURAL = {"miss": "misses", "false alarm": "false alarms"}


def crack_geometry(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
  """(width in pixels, contrast in [0, 1]) of the crack in `mask` on uint8 `image` [H, W, 3]."""
  m = mask > 0
  if not m.any():
    return float("nan"), float("nan")
  edt = ndimage.distance_transform_edt(m)
  ridge = m & (edt >= ndimage.maximum_filter(edt, size=3))
  width = 2.0 * float(np.median(edt[ridge])) - 1.0  # a stroke of odd width w peaks at (w + 1) / 2
  lum = image.astype(np.float32) @ np.asarray(anomaly.LUMA, np.float32) / 255.0
  ring = ndimage.binary_dilation(m, iterations=3) & ~m
  contrast = float(lum[ring].mean() - lum[m].mean()) if ring.any() else float("nan")
  return width, contrast


@dataclasses.dataclass
class Scored:
  """One evaluation's test images with their scores (from its scores.csv), threshold (from metrics.json) and noise
  ids (each image's row in scores.csv, the id the evaluation scored it with)."""

  name: str
  split: pipeline.Split
  scores: np.ndarray
  threshold: float
  ids: np.ndarray


def _load_scored(config, workdir: str, out_dir: str, root: str, name: str) -> Scored:
  csv_path, metrics_path = os.path.join(out_dir, "scores.csv"), os.path.join(out_dir, "metrics.json")
  if not (os.path.exists(csv_path) and os.path.exists(metrics_path)):
    raise UserError(f"{out_dir} has no scores.csv and metrics.json: evaluate the model first (--mode=evaluate)")
  with open(csv_path) as f:
    rows = list(csv.DictReader(f))
  by_name = {r["file"]: float(r["score"]) for r in rows}
  row_of = {r["file"]: i for i, r in enumerate(rows)}
  with open(metrics_path) as f:
    threshold = json.load(f)["image"]["threshold"]
  if threshold is None:
    raise UserError(f"{metrics_path} has no threshold to judge failures by")
  builder = builders.builder_for(config, workdir, root)
  split = pipeline.load_split(builder, "test", resize=config.data.resize)
  keep = [i for i, fn in enumerate(split.filenames) if fn in by_name]
  split = subset(split, keep)
  scores = np.asarray([by_name[fn] for fn in split.filenames], np.float32)
  return Scored(name, split, scores, float(threshold), np.asarray([row_of[fn] for fn in split.filenames]))


def rescore(scorer: Scorer, config, scored: Scored, idx: list[int], desc: str = ""):
  """The maps and scores of scored's images idx with the evaluation's own noise (its test key and each image's id),
  so that a gallery shows the map and verdict the table counted."""
  sub = subset(scored.split, idx)
  kw = dict(batch_size=config.eval.batch_size, tile=tiling(config), desc=desc)
  return sub, compute_maps(scorer, sub.images, split_key(config, "test"), ids=[int(scored.ids[i]) for i in idx], **kw)


def subset(split: pipeline.Split, idx) -> pipeline.Split:
  idx = list(idx)
  return pipeline.Split(
    [split.images[i] for i in idx],
    [split.masks[i] for i in idx],
    split.has_mask[idx] if idx else np.zeros(0, bool),
    split.labels[idx] if idx else np.zeros(0, np.int64),
    [split.filenames[i] for i in idx],
  )


def synthetic_distractors(config: ml_collections.ConfigDict, filenames: list[str]) -> list[str]:
  """The distractor each synthetic image carries ('' = none), replayed from its index in the file name."""
  s = config.data.synthetic
  out = []
  for fn in filenames:
    index = int(os.path.splitext(os.path.basename(fn))[0])
    crack = "/good/" not in f"/{fn}"
    out.append(synthetic.generate_with_distractor(s.seed, index, s.image_size, crack=crack, distractor_prob=s.distractor_prob)[2])
  return out


def mask_kinds(sp: pipeline.Split, crack: np.ndarray, prefix: str = "") -> dict[str, dict]:
  """The thin and faint thirds of the cracked images that have masks (none with fewer than 3); failure = a miss."""
  masked = [i for i in crack if sp.has_mask[i] and sp.masks[i].any()]
  if len(masked) < 3:
    return {}
  geo = np.asarray([crack_geometry(sp.images[i], sp.masks[i]) for i in masked])
  w_cut, c_cut = np.nanpercentile(geo[:, 0], 100 / 3), np.nanpercentile(geo[:, 1], 100 / 3)
  masked = np.asarray(masked)
  return {
    f"{prefix}thin cracks": {
      "indices": masked[geo[:, 0] <= w_cut],
      "failure": "miss",
      "note": f"narrowest third: width <= {w_cut:.1f} px",
    },
    f"{prefix}faint cracks": {
      "indices": masked[geo[:, 1] <= c_cut],
      "failure": "miss",
      "note": f"lowest-contrast third: contrast <= {c_cut:.3f}",
    },
  }


def kinds(config: ml_collections.ConfigDict, home: Scored, synthetic_root: bool) -> dict[str, dict]:
  """kind -> {"indices", "failure" ('miss' | 'false alarm'), "note"} over the home evaluation's images."""
  sp = home.split
  crack = np.flatnonzero(sp.labels == 1)
  good = np.flatnonzero(sp.labels == 0)
  out = {
    "all cracks": {"indices": crack, "failure": "miss", "note": ""},
    "all good": {"indices": good, "failure": "false alarm", "note": ""},
  }
  out.update(mask_kinds(sp, crack))
  if synthetic_root:
    dist = np.asarray(synthetic_distractors(config, [sp.filenames[i] for i in good]))
    for d in synth.DISTRACTORS:
      out[f"{d.replace('_', ' ')}s"] = {"indices": good[dist == d], "failure": "false alarm", "note": "good image with a " + d}
  return out


def _rate(scored: Scored, idx: np.ndarray, failure: str) -> tuple[int, int, list[int]]:
  """(images, failures, failing indices worst first)."""
  s = scored.scores[idx]
  if failure == "miss":
    bad = idx[s < scored.threshold]
    bad = bad[np.argsort(scored.scores[bad])]
  else:
    bad = idx[s >= scored.threshold]
    bad = bad[np.argsort(-scored.scores[bad])]
  return len(idx), len(bad), [int(i) for i in bad]


def _gallery_name(kind: str) -> str:
  """A kind's gallery file: 'all cracks' -> all_cracks.png, 'domain shift -> x: thin cracks' ->
  domain_shift_x_thin_cracks.png."""
  return re.sub(r"[^A-Za-z0-9]+", "_", kind).strip("_") + ".png"


def _gallery(scorer, config, scored: Scored, idx: list[int], path: str, title: str, decision) -> str | None:
  if not idx:
    return None
  sub, res = rescore(scorer, config, scored, idx, title)
  border = calibration.border_of(scorer)
  rows = [
    report.figure_row(sub, j, res.maps[j], float(res.scores[j]), scored.threshold, decision, border) for j in range(len(sub))
  ]
  return plots.four_panel_rows(rows, decision, scored.threshold, path, title=title)


def format_table(rows: list[dict]) -> str:
  lines = ["| kind | images | failure | failures | rate | note |", "|---|---|---|---|---|---|"]
  for r in rows:
    rate = "-" if r["images"] == 0 else f"{r['rate']:.3f}"
    lines.append(f"| {r['kind']} | {r['images']} | {r['failure']} | {r['failures']} | {rate} | {r['note']} |")
  return "\n".join(lines)


def run(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> dict:
  """Failure table and galleries of the model in `workdir` (scored by `scorer`)."""
  out_dir = os.path.join(workdir, "failures")
  decision = calibration.decision(config, workdir, scorer)
  os.makedirs(out_dir, exist_ok=True)
  root = config.data.root
  home = _load_scored(config, workdir, workdir, root, os.path.basename(root.rstrip("/")) if root else "synthetic")
  k = config.eval.num_examples
  rows = []
  for kind, spec in kinds(config, home, synthetic_root=not root).items():
    n, nbad, bad = _rate(home, spec["indices"], spec["failure"])
    path = os.path.join(out_dir, _gallery_name(kind))
    png = _gallery(scorer, config, home, bad[:k], path, f"{kind}: {PLURAL[spec['failure']]}", decision)
    rows.append(
      {"kind": kind, "root": home.name, "images": n, "failure": spec["failure"], "failures": nbad,
       "rate": nbad / n if n else None, "note": spec["note"], "gallery": png}
    )  # fmt: skip
  eval_dir = os.path.join(workdir, "eval")
  for name in sorted(os.listdir(eval_dir)) if os.path.isdir(eval_dir) else []:
    metrics_path = os.path.join(eval_dir, name, "metrics.json")
    if not os.path.exists(metrics_path):
      continue
    with open(metrics_path) as f:
      other_root = json.load(f)["data"]["root"]
    if other_root == "synthetic" or not os.path.isdir(other_root):
      log.info("eval/%s: root %r is not here; skipped", name, other_root)
      continue
    if root and os.path.abspath(other_root) == os.path.abspath(root):
      continue  # a re-scoring of the home root (another setting), not a domain shift
    other = _load_scored(config, workdir, os.path.join(eval_dir, name), other_root, name)
    other.threshold = home.threshold  # the model as deployed: trained and thresholded on its home root
    labels, note = other.split.labels, f"trained and thresholded on {home.name}"
    specs = {}
    for label, failure in ((1, "miss"), (0, "false alarm")):
      if (labels == label).any():
        kind = f"domain shift -> {name}: {'cracks' if label else 'good'}"
        specs[kind] = {"indices": np.flatnonzero(labels == label), "failure": failure, "note": note}
    for kind, spec in mask_kinds(other.split, np.flatnonzero(labels == 1), f"domain shift -> {name}: ").items():
      specs[kind] = dict(spec, note=f"{spec['note']}; {note}")
    for kind, spec in specs.items():
      n, nbad, bad = _rate(other, spec["indices"], spec["failure"])
      path = os.path.join(out_dir, _gallery_name(kind))
      png = _gallery(scorer, config, other, bad[:k], path, f"{kind}: {PLURAL[spec['failure']]}", decision)
      rows.append(
        {"kind": kind, "root": name, "images": n, "failure": spec["failure"], "failures": nbad,
         "rate": nbad / n if n else None, "note": spec["note"], "gallery": png}
      )  # fmt: skip
  out = {"workdir": workdir, "threshold": home.threshold, "rows": rows}
  with open(os.path.join(out_dir, "failures.json"), "w") as f:
    json.dump(out, f, indent=2)
  table = format_table(rows)
  with open(os.path.join(out_dir, "failures.md"), "w") as f:
    f.write(table + "\n")
  print(f"failure kinds of {workdir} (threshold {home.threshold:.4g}) -> {out_dir}\n{table}", flush=True)
  return out
