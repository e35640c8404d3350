"""Detection and localization metrics (NumPy, host side).

Image level: AUROC (the Mann-Whitney U statistic, ties counted half), average precision (step-wise sum of
precision over recall increments, as scikit-learn), F1 at every threshold and its maximum, and the confusion
matrix at a given threshold (score >= threshold -> "crack").
Pixel level: AUROC and AP over all pixels of images with masks; AUPRO (Bergmann et al., MVTec AD, 2021): the mean
per-connected-region overlap integrated over the false-positive rate of good pixels up to 0.3, divided by 0.3.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  scores = np.asarray(scores, np.float64).ravel()
  labels = np.asarray(labels).ravel().astype(bool)
  if scores.shape != labels.shape:
    raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ")
  return scores, labels


def auroc(scores, labels) -> float:
  """P(score of a random positive > score of a random negative) + 0.5 P(tie). NaN if a class is missing."""
  scores, labels = _check(scores, labels)
  n_pos, n_neg = labels.sum(), (~labels).sum()
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  ranks = rankdata(scores)  # average ranks handle ties
  return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_curve(scores, labels):
  """Precision and recall at each distinct threshold, thresholds descending. Returns (precision, recall, thresholds)."""
  scores, labels = _check(scores, labels)
  order = np.argsort(-scores, kind="mergesort")
  s, y = scores[order], labels[order]
  last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
  tp = np.cumsum(y)[last]
  fp = (last + 1) - tp
  precision = tp / np.maximum(tp + fp, 1)
  recall = tp / max(labels.sum(), 1)
  return precision, recall, s[last]


def roc_curve(scores, labels):
  """(false-positive rate, true-positive rate, thresholds), starting at (0, 0)."""
  scores, labels = _check(scores, labels)
  order = np.argsort(-scores, kind="mergesort")
  s, y = scores[order], labels[order]
  last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
  tp = np.cumsum(y)[last]
  fp = (last + 1) - tp
  return (np.r_[0, fp / max((~labels).sum(), 1)], np.r_[0, tp / max(labels.sum(), 1)], np.r_[np.inf, s[last]])


def average_precision(scores, labels) -> float:
  scores, labels = _check(scores, labels)
  if labels.sum() == 0:
    return float("nan")
  precision, recall, _ = pr_curve(scores, labels)
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_max(scores, labels) -> tuple[float, float]:
  """(best F1 over thresholds, the threshold reaching it)."""
  scores, labels = _check(scores, labels)
  if labels.sum() == 0:
    return float("nan"), float("nan")
  precision, recall, thresholds = pr_curve(scores, labels)
  f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
  i = int(np.argmax(f1))
  return float(f1[i]), float(thresholds[i])


def at_threshold(scores, labels, threshold: float) -> dict:
  """Confusion matrix and rates when score >= threshold means 'crack'."""
  scores, labels = _check(scores, labels)
  pred = scores >= threshold
  tp, fn = int((pred & labels).sum()), int((~pred & labels).sum())
  fp, tn = int((pred & ~labels).sum()), int((~pred & ~labels).sum())
  precision = tp / (tp + fp) if tp + fp else float("nan")
  recall = tp / (tp + fn) if tp + fn else float("nan")
  f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
  return {
    "f1": f1,
    "precision": precision,
    "recall": recall,
    "miss_rate": fn / (tp + fn) if tp + fn else float("nan"),
    "false_alarm_rate": fp / (fp + tn) if fp + tn else float("nan"),
    "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
  }


def aupro(maps: list[np.ndarray], masks: list[np.ndarray], *, fpr_limit: float = 0.3, num_thresholds: int = 200) -> float:
  """maps, masks: lists of [H, W] (float scores, {0,1}). NaN when no mask has a region or no pixel is good."""
  regions = []  # (image index, flat pixel indices) per connected ground-truth region
  for i, m in enumerate(masks):
    lab, n = ndimage.label(m > 0)
    regions += [(i, np.flatnonzero(lab == r)) for r in range(1, n + 1)]
  good = np.concatenate([mp[m == 0].ravel() for mp, m in zip(maps, masks)])
  if not regions or good.size == 0:
    return float("nan")
  lo, hi = min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)
  # Thresholds from high to low, denser where good pixels are (the FPR axis is what gets integrated).
  qs = np.quantile(good, np.linspace(1.0, 1.0 - min(1.0, 2 * fpr_limit), num_thresholds))
  # ... and at the region pixels' own quantiles, so the curve's corners (where whole regions light up) are kept.
  region_px = np.concatenate([maps[i].ravel()[idx] for i, idx in regions])
  qr = np.quantile(region_px, np.linspace(0.0, 1.0, num_thresholds // 2))
  thresholds = np.unique(np.r_[hi + 1e-12, qs, qr, lo])[::-1]
  good_sorted = np.sort(good)
  fprs, pros = [], []
  for th in thresholds:
    fprs.append((good.size - np.searchsorted(good_sorted, th, side="left")) / good.size)
    pros.append(np.mean([(maps[i].ravel()[idx] >= th).mean() for i, idx in regions]))
  fprs, pros = np.asarray(fprs), np.asarray(pros)
  keep = fprs <= fpr_limit
  f, p = fprs[keep], pros[keep]
  # Close the curve exactly at fpr_limit by linear interpolation to the next threshold.
  nxt = np.flatnonzero(~keep)
  if nxt.size and f.size:
    j = nxt[0]
    f1, p1 = fprs[j - 1], pros[j - 1]
    f2, p2 = fprs[j], pros[j]
    p_lim = p1 + (p2 - p1) * (fpr_limit - f1) / max(f2 - f1, 1e-12)
    f, p = np.r_[f, fpr_limit], np.r_[p, p_lim]
  return float(np.trapezoid(p, f) / fpr_limit)


def pixel_metrics(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict:
  """Pixel AUROC, AP, F1-max and AUPRO over images that have masks (good images may be included, all-zero masks)."""
  scores = np.concatenate([m.ravel() for m in maps]).astype(np.float32)
  labels = np.concatenate([m.ravel() for m in masks]).astype(bool)
  if scores.size > 20_000_000:  # bound memory and time: a fixed, seeded subsample of pixels
    idx = np.random.default_rng(0).choice(scores.size, 20_000_000, replace=False)
    scores, labels = scores[idx], labels[idx]
  f1, _ = f1_max(scores, labels)
  return {"auroc": auroc(scores, labels), "aupro": aupro(maps, masks), "ap": average_precision(scores, labels), "f1_max": f1}


# ------------------------------------------------------------------------------- a paired bootstrap of AUROC


def differences(labels: np.ndarray, a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0):
  """AUROC(b) - AUROC(a) on the photos as they are, and [n] over stratified resamples of them (each keeps the
  split's counts of cracked and good photos)."""
  labels = np.asarray(labels)
  pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
  if not len(pos) or not len(neg):
    raise ValueError("paired_bootstrap needs cracked and good photos")
  rng = np.random.default_rng(seed)
  d = np.empty(n)
  for r in range(n):
    i = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
    d[r] = auroc(b[i], labels[i]) - auroc(a[i], labels[i])
  return auroc(b, labels) - auroc(a, labels), d


def summary(diff: float, d: np.ndarray) -> dict:
  """{'diff', 'low', 'high', 'p_not_better'}: the 95% interval and the share of resamples with a difference <= 0."""
  low, high = np.percentile(d, [2.5, 97.5])
  return {"diff": float(diff), "low": float(low), "high": float(high), "p_not_better": float((d <= 0).mean())}


def paired_bootstrap(labels: np.ndarray, a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0) -> dict:
  """AUROC(b) - AUROC(a) on the same photos, and over n stratified resamples of them: summary()'s dict."""
  return summary(*differences(labels, a, b, n=n, seed=seed))


def mean_over_sets(sets: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, n: int = 2000, seed: int = 0) -> dict:
  """The mean over sets of (labels, a, b) of AUROC(b) - AUROC(a), each set resampled on its own: summary()'s dict.
  Several small sets together resolve what each alone cannot."""
  if not sets:
    raise ValueError("mean_over_sets needs at least one set")
  parts = [differences(y, a, b, n=n, seed=seed + k) for k, (y, a, b) in enumerate(sets)]
  return summary(float(np.mean([p[0] for p in parts])), np.mean([p[1] for p in parts], axis=0))
