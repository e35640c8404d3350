"""Predict mode: score any folder of images (or one image), of any sizes, with any trained model kind.

Writes <workdir>/predict/<name>/:
    predictions.csv   file, score, verdict, threshold, error: a row per file, appended as each image is done
    report.html       the run for an inspector (crackjax/html_report.py): summary, sorted table, filters
    overlays/<file>.png   four-panel figure (image, map, overlay, red mask), downsampled for display only
    masks/<file>.png      the red mask at the photo's own resolution (red = map at or above the threshold)
    thumbs/<file>.jpg     the report's thumbnails
A folder of thousands streams in bounded memory (images are read as the model needs them; photos larger than
`eval.tile_max_side` are scored in tiles), with progress (images/s, ETA). A killed or repeated run resumes: files
already in predictions.csv are skipped unless `predict.redo`. Unreadable, empty, truncated, non-image and too-large
files get a row with the error and the run goes on; a run in which nothing could be scored fails.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import zlib

import jax
import ml_collections
import numpy as np
from PIL import Image

from crackjax import html_report, plots, thresholds
from crackjax.data import decode, pipeline
from crackjax.report import verdict
from crackjax.scorer import Scorer, Stats, iter_maps, tiling

log = logging.getLogger(__name__)

COLUMNS = ["file", "score", "verdict", "threshold", "error"]
DISPLAY_SIDE = 1024  # figures are drawn from images downsampled to at most this side
THUMB_SIDE = 96  # report.html's inline thumbnails


def save_mask(hot: np.ndarray, path: str) -> None:
  """The red mask at the image's own resolution: red where the map reaches the threshold, transparent elsewhere
  (lay it over the photo; PNG compresses it to a few kB)."""
  rgba = np.zeros((*hot.shape, 4), np.uint8)
  rgba[hot] = (255, 0, 0, 255)
  Image.fromarray(rgba, "RGBA").save(path, optimize=True)


def list_inputs(path: str) -> list[str]:
  """Image files under `path` (recursively, links to folders not followed: no symlink loops), or `path` itself."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"config.predict.input={path!r} is neither an image file nor a folder")
  files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(path, followlinks=False) for f in fs if decode.is_image_file(f))
  if not files:
    raise FileNotFoundError(f"config.predict.input={path!r} holds no image files ({', '.join(decode.IMAGE_EXTENSIONS)})")
  return files


def output_name(path: str, src: str) -> str:
  """A file's name in overlays/ and masks/: its path under the input folder with '/' -> '__', extension kept
  (a.png and a.jpg in one folder are two images: a.png.png and a.jpg.png)."""
  base = src if os.path.isdir(src) else os.path.dirname(src)
  return os.path.relpath(path, base).replace(os.sep, "__") + ".png"


def image_id(path: str, src: str) -> int:
  """An image's noise id: a hash of its path under the input folder (the exported loader computes the same)."""
  base = src if os.path.isdir(src) else os.path.dirname(src)
  return zlib.crc32(os.path.relpath(path, base).encode()) & 0x7FFFFFFF


def load_threshold(config: ml_collections.ConfigDict, workdir: str) -> tuple[float, str]:
  """predict.threshold when set (>= 0), else predict.operating_point as calibrated on val at evaluation time
  (<workdir>/operating_points.json, or computed from <workdir>/val_scores.csv), printed with its val recall and
  false-alarm rate."""
  p = config.predict
  if p.threshold >= 0:
    return float(p.threshold), "predict.threshold"
  spec = p.operating_point
  points_path, val_path = os.path.join(workdir, "operating_points.json"), os.path.join(workdir, "val_scores.csv")
  point = None
  if os.path.exists(points_path):
    with open(points_path) as f:
      point = json.load(f)["points"].get(spec)
  if point is None and os.path.exists(val_path):
    with open(val_path, newline="") as f:
      rows = list(csv.DictReader(f))
    metrics_path = os.path.join(workdir, "metrics.json")
    f1_th = json.load(open(metrics_path))["image"]["threshold"] if os.path.exists(metrics_path) else None
    scores, labels = np.array([float(r["score"]) for r in rows]), np.array([int(r["label"]) for r in rows])
    point = thresholds.operating_point(scores, labels, spec, f1_th)
  if point is None:
    raise FileNotFoundError(
      f"no operating points in {workdir} (operating_points.json, val_scores.csv): evaluate the model first (run "
      "without --mode, or --mode=evaluate), or set --config.predict.threshold"
    )
  fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
  log.info(
    "operating point %s: threshold %.6g, on val recall %s, false-alarm rate %s", spec, point["threshold"],
    fmt(point["val_recall"]), fmt(point["val_false_alarm_rate"]),
  )  # fmt: skip
  return float(
    point["threshold"]
  ), f"operating point {spec} (val recall {fmt(point['val_recall'])}, false-alarm rate {fmt(point['val_false_alarm_rate'])})"


def _done_rows(out_csv: str) -> dict[str, dict]:
  if not os.path.exists(out_csv):
    return {}
  with open(out_csv, newline="") as f:
    return {r["file"]: r for r in csv.DictReader(f) if r.get("file")}


def _read(path: str, resize: float, max_pixels: int) -> np.ndarray:
  try:  # giant photos are refused from their header, before decoding
    return pipeline.resize_image(decode.read_image(path, max_pixels=max_pixels), resize)
  except decode.BadImageError as e:
    if "megapixels" in e.reason:
      raise decode.BadImageError(path, e.reason + " (config.predict.max_megapixels)") from None
    raise


def _display(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  f = max(1, int(np.ceil(max(img.shape[:2]) / DISPLAY_SIDE)))
  return img[::f, ::f], m[::f, ::f]


def predict(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> str:
  """Scores config.predict.input; returns the path of predictions.csv."""
  p = config.predict
  if not p.input:
    raise ValueError("--mode=predict needs --config.predict.input=/folder/or/image")
  threshold, source = load_threshold(config, workdir)
  files = list_inputs(p.input)
  name = p.name or os.path.basename(os.path.abspath(p.input).rstrip("/")) or "input"
  out_dir = os.path.join(workdir, "predict", name)
  for sub in ("overlays", "masks", "thumbs"):
    os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
  out_csv = os.path.join(out_dir, "predictions.csv")
  done = {} if p.redo else _done_rows(out_csv)
  done = {k: v for k, v in done.items() if k in set(files)}
  todo = [f for f in files if f not in done]
  log.info(
    "predict: %d file(s) in %s, %d already scored in %s%s; threshold %.6g (%s)",
    len(files), p.input, len(done), out_csv, " (skipped; predict.redo=True scores them again)" if done else "",
    threshold, source,
  )  # fmt: skip
  f = open(out_csv, "w", newline="")
  w = csv.writer(f)
  w.writerow(COLUMNS)
  for r in done.values():  # rewritten first: a kill now loses nothing
    w.writerow([r.get(c, "") for c in COLUMNS])
  f.flush()
  pending: dict[str, np.ndarray] = {}
  n_err = [0]

  def items():
    for path in todo:
      try:
        img = _read(path, config.data.resize, int(p.max_megapixels * 1e6))
      except (decode.BadImageError, OSError) as e:
        reason = e.reason if isinstance(e, decode.BadImageError) else f"cannot be read ({e})"
        w.writerow([path, "", "", f"{threshold:.6g}", reason])
        f.flush()
        n_err[0] += 1
        log.warning("%s: %s", path, reason)
        continue
      pending[path] = img
      yield path, image_id(path, p.input), img

  stats, t0, t_log, n_done = Stats(), time.time(), time.time(), 0
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 3)
  try:
    for path, m, s, b in iter_maps(scorer, items(), key, batch_size=config.eval.batch_size, tile=tiling(config), stats=stats):
      img = pending.pop(path)
      w.writerow([path, repr(float(s)), verdict(s, threshold), f"{threshold:.6g}", ""])
      f.flush()
      units = scorer.units(m, b)
      out_name = output_name(path, p.input)
      save_mask(units >= threshold, os.path.join(out_dir, "masks", out_name))
      thumb = Image.fromarray(img)
      thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
      thumb.save(os.path.join(out_dir, "thumbs", out_name.removesuffix(".png") + ".jpg"), quality=80)
      if p.overlays == "all" or (p.overlays == "flagged" and s >= threshold):
        di, dm = _display(img, m)
        du = _display(img, units)[1]
        vmax = max(float(np.percentile(m, 99.9)), 1e-6)
        row = {"image": di, "map": dm, "units": du, "score": float(s), "label": -1, "filename": path}
        plots.four_panel_rows([row], vmax, threshold, os.path.join(out_dir, "overlays", out_name))
      n_done += 1
      if time.time() - t_log > 10 or n_done == len(todo):
        rate = n_done / max(time.time() - t0, 1e-9)
        left = len(todo) - n_done - n_err[0]
        log.info("predict: %d/%d images, %.2f images/s, ETA %.0f s", n_done + n_err[0], len(todo), rate, left / max(rate, 1e-9))
        t_log = time.time()
  finally:
    f.close()
  rows = _done_rows(out_csv)
  scored = [r for r in rows.values() if r["score"]]
  n_crack = sum(r["verdict"] == "crack" for r in scored)
  log.info(
    "predicted %d file(s): %d crack, %d good, %d unreadable -> %s",
    len(rows), n_crack, len(scored) - n_crack, len(rows) - len(scored), out_csv,
  )  # fmt: skip
  with open(os.path.join(out_dir, "summary.json"), "w") as fs:
    json.dump(
      {"input": p.input, "files": len(rows), "scored": len(scored), "crack": n_crack, "errors": len(rows) - len(scored),
       "threshold": threshold, "threshold_source": source, "model": scorer.info,
       "seconds": time.time() - t0, "model_seconds": stats.seconds, "compile_seconds": stats.compile_seconds},
      fs, indent=2,
    )  # fmt: skip
  page = html_report.write(out_dir, lambda path: output_name(path, p.input))
  log.info("report -> %s", page)
  if not scored:
    raise ValueError(f"none of the {len(rows)} file(s) in {p.input} could be scored (errors in {out_csv})")
  return out_csv
