"""Choosing the decision threshold, never on the test set.

- val has good and cracked images: the F1-max threshold on val ('val_f1_max');
- val has good images only (e.g. held out of train/good): a percentile of their scores ('val_good_pNN');
- a root evaluated without val of its own (`--config.eval.root`): the training root's threshold, read from the
  workdir's metrics.json ('workdir_metrics') - the model as deployed.
A threshold that cannot be chosen is an error naming what is missing, never a NaN.
"""

from __future__ import annotations

import json
import os

import numpy as np

from crackjax import metrics


def choose(val_scores: np.ndarray | None, val_labels: np.ndarray | None, *, percentile: float, workdir: str) -> tuple[float, str]:
  """(threshold, threshold_source); see the module docstring."""
  if val_scores is not None and len(val_scores):
    labels = np.asarray(val_labels)
    good, crack = labels == 0, labels == 1
    if good.any() and crack.any():
      keep = good | crack
      _, th = metrics.f1_max(val_scores[keep], labels[keep])
      return th, "val_f1_max"
    if good.any():
      return float(np.percentile(val_scores[good], percentile)), f"val_good_p{percentile:g}"
  own = os.path.join(workdir, "metrics.json")
  if os.path.exists(own):
    with open(own) as f:
      th = json.load(f)["image"].get("threshold")
    if th is not None:
      return float(th), "workdir_metrics"
  raise ValueError(
    f"no val images to choose a threshold on, and no threshold in {own}: add ROOT/val/{{good,crack}}/ or let "
    "data.val_fraction (> 0) hold out part of train/good"
  )
