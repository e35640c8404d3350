"""Predict mode: score any folder of images (or one image) with a trained teacher or student.

Writes <workdir>/predict/<name>/predictions.csv (file, score, verdict, threshold, error) and one four-panel figure
per image (image, anomaly map, heatmap overlay, red mask) under overlays/. Files that cannot be read get a row with
the error and no score; the others are still scored.
"""

from __future__ import annotations

import csv
import json
import logging
import os

import jax
import ml_collections
import numpy as np

from crackjax import anomaly, plots
from crackjax.data import decode, pipeline
from crackjax.evaluate import Scorer, compute_maps

log = logging.getLogger(__name__)


def list_inputs(path: str) -> list[str]:
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"config.predict.input={path!r} is neither an image file nor a folder")
  files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(path) for f in fs if decode.is_image_file(f))
  if not files:
    raise FileNotFoundError(f"config.predict.input={path!r} holds no image files ({', '.join(decode.IMAGE_EXTENSIONS)})")
  return files


def predict(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> str:
  """Scores config.predict.input; returns the path of predictions.csv."""
  src = config.predict.input
  if not src:
    raise ValueError("--mode=predict needs --config.predict.input=/folder/or/image")
  threshold = config.predict.threshold
  if threshold < 0:
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"no {path} to take the threshold from: evaluate first, or set --config.predict.threshold")
    with open(path) as f:
      threshold = float(json.load(f)["image"]["threshold"])
  files = list_inputs(src)
  name = config.predict.name or os.path.basename(os.path.abspath(src).rstrip("/")) or "input"
  out_dir = os.path.join(workdir, "predict", name)
  images, names, errors = [], [], {}
  for p in files:
    try:
      images.append(pipeline.resize_image(decode.read_image(p), config.data.resize))
      names.append(p)
    except decode.BadImageError as e:
      errors[p] = e.reason
  if errors:
    log.warning("Could not read %d file(s):\n  %s", len(errors), "\n  ".join(f"{k}: {v}" for k, v in errors.items()))
  split = pipeline.Split(
    images, [np.zeros(i.shape[:2], np.uint8) for i in images], np.zeros(len(images), bool), np.full(len(images), -1), names
  )
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 3)
  res = compute_maps(scorer, split, key, batch_size=config.eval.batch_size, desc="predict") if images else None
  os.makedirs(os.path.join(out_dir, "overlays"), exist_ok=True)
  scored = {p: i for i, p in enumerate(names)}
  vmax = float(np.percentile(np.concatenate([m.ravel() for m in res.maps]), 99.9)) if res else 1.0
  out_csv = os.path.join(out_dir, "predictions.csv")
  with open(out_csv, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["file", "score", "verdict", "threshold", "error"])
    for p in files:
      if p in scored:
        i = scored[p]
        s = float(res.scores[i])
        w.writerow([p, f"{s:.6g}", "crack" if s >= threshold else "good", f"{threshold:.6g}", ""])
        stem = os.path.splitext(os.path.relpath(p, src if os.path.isdir(src) else os.path.dirname(src)))[0].replace(os.sep, "__")
        plots.four_panel_rows(
          [
            {
              "image": images[i],
              "map": res.maps[i],
              "units": anomaly.score_units(res.maps[i], scorer.info["pooling"]),
              "score": s,
              "label": -1,
              "filename": p,
            }
          ],
          vmax,
          threshold,
          os.path.join(out_dir, "overlays", f"{stem}.png"),
        )
      else:
        w.writerow([p, "", "", f"{threshold:.6g}", errors[p]])
  n_crack = sum(1 for i in range(len(names)) if res.scores[i] >= threshold) if res else 0
  log.info(
    "predicted %d image(s): %d crack, %d good, %d unreadable -> %s",
    len(files),
    n_crack,
    len(names) - n_crack,
    len(errors),
    out_csv,
  )
  return out_csv
