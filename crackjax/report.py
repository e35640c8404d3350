"""What an evaluation writes: metrics.json (its image, pixel, model, speed, data and val sections), scores.csv (one
row per test image: file, label, score, verdict) and plots/ (histogram with the threshold, ROC, PR, confusion
matrix, four-panel galleries of true positives, clean passes, worst misses and worst false alarms). No scoring
here: it takes maps and scores made elsewhere (crackjax/scorer.py) and a threshold chosen elsewhere
(crackjax/thresholds.py)."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os

import jax
import numpy as np

from crackjax import files, metrics, plots
from crackjax import mask as mask_lib
from crackjax.data import pipeline
from crackjax.scorer import MapResult

log = logging.getLogger(__name__)


def verdict(score: float, threshold: float) -> str:
  """The one rule for a verdict, everywhere (scores.csv, predictions.csv, figures): score >= threshold -> crack."""
  return "crack" if score >= threshold else "good"


def write_scores(path: str, filenames, labels, scores, threshold: float) -> None:
  """file, label, score, verdict per image (scores.csv for test, val_scores.csv for the images the threshold was
  chosen on)."""
  with files.writing(path), open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["file", "label", "score", "verdict"])
    for fn, y, s in zip(filenames, labels, scores):
      w.writerow([fn, int(y), repr(float(s)), verdict(s, threshold)])


def write_maps(path: str, filenames, labels, maps, localization_darkness: float = 0.0) -> None:
  """Every (localization) map of a split (float32, each at its image's own size) with its file name and label, for
  offline study; written whole or not at all. localization_darkness: the
  weight of the darkness the maps have added (0: they are the image maps that the scores pool)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  arrays = {f"map_{i:06d}": np.asarray(m, np.float32) for i, m in enumerate(maps)}
  tmp = path + ".tmp.npz"
  with files.writing(path):
    np.savez_compressed(
      tmp, filenames=np.asarray(filenames, str), labels=np.asarray(labels, np.int32),
      localization_darkness=np.float32(localization_darkness), **arrays,
    )  # fmt: skip
  os.replace(tmp, path)


def load_maps(path: str) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
  """(file names, labels, maps) of a file written by write_maps."""
  with np.load(path) as z:
    n = len(z["labels"])
    return list(z["filenames"]), z["labels"], [z[f"map_{i:06d}"] for i in range(n)]


def write_json(path: str, obj: dict) -> None:
  """Written whole or not at all (a kill mid-write leaves the previous file)."""
  tmp = path + ".tmp"
  with files.writing(path), open(tmp, "w") as f:
    json.dump(_nan_to_none(obj), f, indent=2)
  os.replace(tmp, path)


def _nan_to_none(x):
  if isinstance(x, dict):
    return {k: _nan_to_none(v) for k, v in x.items()}
  if isinstance(x, float) and not np.isfinite(x):
    return None
  return x


def pixel_metric_images(split: pipeline.Split) -> np.ndarray:
  """bool [N]: the images pixel metrics are computed over (those with a mask and the good ones, whose masks are
  all zero), none where no image has a mask; a streamed evaluation keeps only these maps."""
  if not split.has_mask.any():
    return np.zeros(len(split), bool)
  return split.has_mask | (split.labels == 0)


def split_pixel_metrics(split: pipeline.Split, maps: list[np.ndarray]) -> dict | None:
  """Pixel metrics over pixel_metric_images(split); None where no image has a mask."""
  idx = np.flatnonzero(pixel_metric_images(split))
  if not len(idx):
    return None
  return metrics.pixel_metrics([maps[i] for i in idx], [split.masks[i] for i in idx])


def mask_metrics(split: pipeline.Split, maps: list, scores: np.ndarray, threshold: float, decision, border: int) -> dict:
  """The red mask as shipped (decision, no red on photos passed as good unless decision.on_good), measured:
  "pixel_mask": precision, recall, F1, IoU pooled over pixel_metric_images (absent where no image has a mask);
  "mask_on_good": over the sound photos, the median red share of those passed and of those flagged, the share
    of passed ones without a red pixel, and the same of the decision alone, without the verdict's gate and the
    flagged photos' fallback (what the thresholds themselves would paint)."""
  out = {}
  idx = np.flatnonzero(pixel_metric_images(split))
  if len(idx):
    c = np.zeros(3, np.int64)
    for i in idx:
      c += mask_lib.counts(mask_lib.decide(maps[i], decision, border=border, flagged=scores[i] >= threshold), split.masks[i])
    out["pixel_mask"] = mask_lib.scores_of(c)
  good = [i for i in np.flatnonzero(split.labels == 0) if maps[i] is not None]
  if good:
    alone = dataclasses.replace(decision, explain=False)
    ungated = {i: float(mask_lib.decide(maps[i], alone, border=border, flagged=True).mean()) for i in good}
    shipped = {i: float(mask_lib.decide(maps[i], decision, border=border, flagged=scores[i] >= threshold).mean()) for i in good}
    passed = [i for i in good if scores[i] < threshold]
    flagged = [i for i in good if scores[i] >= threshold]
    med = lambda v: float(np.median(v)) if len(v) else None  # noqa: E731
    out["mask_on_good"] = {
      "red_share_passed": med([shipped[i] for i in passed]),
      "red_share_flagged": med([shipped[i] for i in flagged]),
      "passed_without_red": float(np.mean([shipped[i] == 0 for i in passed])) if passed else None,
      "n_passed": len(passed),
      "n_flagged": len(flagged),
      "ungated_red_share": med(list(ungated.values())),
      "ungated_without_red": float(np.mean([v == 0 for v in ungated.values()])),
    }
  return out


def figure_groups(labels: np.ndarray, scores: np.ndarray, threshold: float, k: int) -> dict[str, list[int]]:
  """The images of each four-panel figure: up to k true positives, clean passes, worst misses, worst false alarms."""
  good = np.flatnonzero(labels == 0)
  crack = np.flatnonzero(labels == 1)
  return {
    "true_positives": [i for i in crack[np.argsort(-scores[crack])] if scores[i] >= threshold][:k],
    "clean_passes": [i for i in good[np.argsort(scores[good])] if scores[i] < threshold][:k],
    "worst_misses": [i for i in crack[np.argsort(scores[crack])]][:k],
    "worst_false_alarms": [i for i in good[np.argsort(-scores[good])]][:k],
  }


def report(
  *,
  config,
  out_dir: str,
  test: pipeline.Split,
  res: MapResult,
  threshold: float,
  threshold_source: str,
  model_info: dict,
  data_info: dict,
  decision,
  val_metrics: dict | None = None,
) -> dict:
  """Metrics, scores.csv and plots for a scored test split; returns the metrics dict (also written).

  `decision`: the red mask's (mask.Decision). `val_metrics` (image AUROC/AP on val, where val has both classes)
  shows what a setting was chosen on."""
  labelled = test.labels >= 0
  scores, labels = res.scores[labelled], test.labels[labelled]
  f1m, th_f1m = metrics.f1_max(scores, labels)
  image = {
    "auroc": metrics.auroc(scores, labels),
    "ap": metrics.average_precision(scores, labels),
    "f1_max": f1m,
    "threshold_f1_max": th_f1m,
    "threshold": threshold,
    "threshold_source": threshold_source,
    **metrics.at_threshold(scores, labels, threshold),
    "n_good": int((labels == 0).sum()),
    "n_crack": int((labels == 1).sum()),
  }
  out = {"image": image}
  pixel = split_pixel_metrics(test, res.maps)
  border = int(model_info.get("border", 0))
  shipped = mask_metrics(test, res.maps, res.scores, threshold, decision, border)
  if pixel is not None:
    out["pixel"] = {**pixel, "mask": shipped["pixel_mask"]}
  if "mask_on_good" in shipped:
    out["mask_on_good"] = shipped["mask_on_good"]
  out["mask"] = decision.to_json()
  n = len(test)
  out["speed"] = {
    "images_per_second": n / max(res.seconds, 1e-9),
    "seconds_per_image": res.seconds / max(n, 1),
    "gflops_per_image": res.flops_per_image / 1e9,
    "device": str(jax.devices()[0].device_kind),
    "num_devices": jax.device_count(),
    "compile_seconds": res.compile_seconds,
  }
  out["model"] = model_info
  out["data"] = data_info
  if val_metrics is not None:
    out["val"] = val_metrics
  out = _nan_to_none(out)
  os.makedirs(out_dir, exist_ok=True)
  write_json(os.path.join(out_dir, "metrics.json"), out)
  write_scores(os.path.join(out_dir, "scores.csv"), test.filenames, test.labels, res.scores, threshold)
  write_plots(config, os.path.join(out_dir, "plots"), test, res, threshold, image["confusion"], decision, border)
  log.info("metrics -> %s", os.path.join(out_dir, "metrics.json"))
  return out


def figure_row(split: pipeline.Split, i: int, amap: np.ndarray, score: float, threshold: float, decision, border: int) -> dict:
  """One row of a four-panel figure (plots.four_panel_rows) for image i of `split`, its red mask as shipped."""
  return {
    "image": split.images[i],
    "map": amap,
    "hot": mask_lib.decide(amap, decision, border=border, flagged=score >= threshold),
    "score": score,
    "label": split.labels[i],
    "filename": split.filenames[i],
    "gt": split.masks[i] if split.has_mask[i] else None,
  }


def write_plots(
  config, plot_dir: str, test: pipeline.Split, res: MapResult, threshold: float, conf: dict, decision, border: int
) -> None:
  labelled = test.labels >= 0
  s, y = res.scores[labelled], test.labels[labelled]
  plots.histogram(s, y, threshold, os.path.join(plot_dir, "histogram.png"))
  if (y == 1).any() and (y == 0).any():
    plots.roc(s, y, os.path.join(plot_dir, "roc.png"))
    plots.pr(s, y, os.path.join(plot_dir, "pr.png"))
  plots.confusion(conf, os.path.join(plot_dir, "confusion.png"))
  row = lambda i: figure_row(test, i, res.maps[i], float(res.scores[i]), threshold, decision, border)  # noqa: E731
  for name, idx in figure_groups(test.labels, res.scores, threshold, config.eval.num_examples).items():
    if len(idx):
      plots.four_panel_rows(
        [row(i) for i in idx], decision, threshold, os.path.join(plot_dir, f"{name}.png"), title=name.replace("_", " ")
      )
