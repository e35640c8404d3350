"""Choosing the decision threshold, never on the test set.

- val has good and cracked images: the F1-max threshold on val ('val_f1_max');
- val has good images only (a user's own sound photos, or 10% of train/good held out): the F1-max threshold of
  those photos against the same photos with a synthetic crack drawn in ('val_synthetic_f1_max'), the cracks of the
  red mask's calibration (crackjax/calibration.py). On concrete_pavement's val it chose 0.953 where its real
  cracks choose 0.990, and flagged 2% of the sound photos (2026-12-07); the 99th percentile of the sound photos'
  scores alone ('val_good_pNN', without synthetic cracks) is set by a few outliers when val is small;
- a root evaluated without val of its own (`--config.eval.root`): the training root's threshold, read from the
  workdir's metrics.json ('workdir_metrics') - the model as deployed.
A threshold that cannot be chosen is an error naming what is missing, never a NaN.
"""

from __future__ import annotations

import json
import os

import numpy as np

from crackjax import metrics
from crackjax.errors import UserError


def choose(
  val_scores: np.ndarray | None, val_labels: np.ndarray | None, *, percentile: float, workdir: str, synthetic=None
) -> tuple[float, str]:
  """(threshold, threshold_source); see the module docstring. synthetic: the scores of val's sound photos with a
  synthetic crack drawn in, the cracks val lacks."""
  if val_scores is not None and len(val_scores):
    labels = np.asarray(val_labels)
    good, crack = labels == 0, labels == 1
    if good.any() and crack.any():
      keep = good | crack
      _, th = metrics.f1_max(val_scores[keep], labels[keep])
      return th, "val_f1_max"
    if good.any() and synthetic is not None and len(synthetic):
      scores = np.r_[np.asarray(val_scores)[good], synthetic]
      _, th = metrics.f1_max(scores, np.r_[np.zeros(int(good.sum()), int), np.ones(len(synthetic), int)])
      return th, "val_synthetic_f1_max"
    if good.any():
      return float(np.percentile(val_scores[good], percentile)), f"val_good_p{percentile:g}"
  own = os.path.join(workdir, "metrics.json")
  if os.path.exists(own):
    with open(own) as f:
      th = json.load(f)["image"].get("threshold")
    if th is not None:
      return float(th), "workdir_metrics"
  raise UserError(
    f"no val images to choose a threshold on, and no threshold in {own}: add ROOT/val/{{good,crack}}/ or let "
    "data.val_fraction (> 0) hold out part of train/good"
  )


# ----------------------------------------------------------------------------------------- operating points

STANDARD_POINTS = ("val_f1", "recall:0.95", "recall:0.99", "recall:0.995", "false_alarms:0.01", "false_alarms:0.05")


def parse_point(spec: str) -> tuple[str, float]:
  """'val_f1' | 'recall:0.99' (the highest threshold keeping val recall >= 0.99) | 'false_alarms:0.01' (the lowest
  threshold keeping the share of val good images flagged <= 0.01)."""
  if spec == "val_f1":
    return "val_f1", 0.0
  kind, _, value = spec.partition(":")
  try:
    v = float(value)
  except ValueError:
    v = -1.0
  if not ((kind == "recall" and 0 < v <= 1) or (kind == "false_alarms" and 0 <= v <= 1)):
    raise UserError(
      f"config.predict.operating_point must be 'val_f1', 'recall:R' (R in (0, 1]) or 'false_alarms:F' (F in [0, 1]); got {spec!r}"
    )
  return kind, v


def operating_point(scores: np.ndarray, labels: np.ndarray, spec: str, f1_threshold: float | None = None) -> dict:
  """{'spec', 'threshold', 'val_recall', 'val_false_alarm_rate'} of an operating point chosen on val scores."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
  crack, good = np.sort(scores[labels == 1])[::-1], np.sort(scores[labels == 0])[::-1]
  kind, v = parse_point(spec)
  if kind == "val_f1":
    if f1_threshold is None:
      raise UserError("the val F1 operating point needs the evaluation's threshold")
    th = f1_threshold
  elif kind == "recall":
    if not len(crack):
      raise UserError(f"operating point {spec!r}: val has no cracked images to measure recall on")
    th = float(crack[int(np.ceil(v * len(crack))) - 1])  # the k-th highest crack score keeps k of them
  else:
    if not len(good):
      raise UserError(f"operating point {spec!r}: val has no good images to count false alarms on")
    k = int(np.floor(v * len(good) + 1e-9))  # at most k good images may pass
    th = float(np.nextafter(good[k], np.inf)) if k < len(good) else float(good[-1])
  return {
    "spec": spec,
    "threshold": th,
    "val_recall": float((crack >= th).mean()) if len(crack) else None,
    "val_false_alarm_rate": float((good >= th).mean()) if len(good) else None,
  }


def operating_points(scores, labels, f1_threshold: float, extra: tuple[str, ...] = ()) -> dict:
  """The standard points (and `extra`) that val supports, keyed by spec: written at evaluation time as
  operating_points.json, read by predict (predict.operating_point)."""
  out = {}
  for spec in dict.fromkeys((*STANDARD_POINTS, *extra)):
    try:
      out[spec] = operating_point(scores, labels, spec, f1_threshold)
    except ValueError:
      continue  # val lacks the class this point is measured on
  return out
