"""The red mask: a decision of its own on the localization map, chosen on synthetic cracks (host side, NumPy).

The image verdict asks "is there a crack in this photo?"; the mask asks "which pixels are crack?". One threshold in
each photo's own units (the map over its own spread) answers the first well and the second badly: a fixed share of
every photo's roughest grain passes it. The mask is therefore decided on the localization map itself, in the same
absolute units for every photo of a model, by hysteresis:

    weak   = map >= low                      (8-connected components)
    strong = map >= high                     (high >= low)
    mask   = the components of `weak` that hold a `strong` pixel and reach at least `min_length` pixels
             (the diagonal of their bounding box, working-resolution pixels): a crack's strongest pixels seed it,
             its fainter continuation is kept where it connects, and an isolated rough grain or pit is dropped

and a photo whose verdict is "good" carries no red (`mask.on_good` asks for it anyway). A photo flagged as "crack"
whose map holds no such region (a faint crack on a quiet surface: its score is high for that surface, its map low
in absolute units) shows its strongest region instead, the connected part of its top EXPLAIN_SHARE around the
map's peak (`mask.explain`), so every verdict of "crack" points somewhere. The map's outer `border` pixels, which
the image score does not see either, are never red.

`calibrate` chooses (low, high, min_length) without any real crack label: cracks of the synthetic model
(crackjax/synth.py: draw_fine_crack, from hairlines to wide dark cracks) are drawn into a model's own sound val
photos, with exact masks; the same photos unmodified join them as sound concrete; the grid point with the highest
pooled pixel F1 over both wins. The decision and the heatmap's colour scale (one per model: the same colour is
the same evidence in every photo) are saved as <workdir>/mask_decision.json.

Maps are upsampled smoothly (bilinear) to the photo's own size before the decision (`upsample`), so a mask lines
up with the photo at its own resolution.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from PIL import Image
from scipy import ndimage

from crackjax import anomaly, files
from crackjax.errors import UserError

EIGHT = np.ones((3, 3), bool)  # 8-connectivity: a diagonal step along a thin crack keeps it one component
FILE = "mask_decision.json"
# The calibration grid: thresholds at these quantiles of the cracked photos' map pixels and at CRACK_QUANTILES of
# their crack pixels' (so candidates lie in the cracks' own range however few pixels they cover); lengths in pixels
QUANTILES = (0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.993, 0.995, 0.997, 0.999)
CRACK_QUANTILES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
MIN_LENGTHS = (0.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)
EXPLAIN_SHARE = 0.005  # a flagged photo with an empty mask shows the connected part of its top 0.5% around its peak


@dataclasses.dataclass(frozen=True)
class Decision:
  """A model's red-mask decision (map units, working-resolution pixels) and its colour scale."""

  low: float  # hysteresis: a component's pixels are at least this
  high: float  # ... and at least one of them reaches this
  min_length: float  # its bounding box's diagonal, pixels at the working resolution
  colour_max: float  # the heatmap's top colour (0 is the bottom), the same for every photo of the model
  on_good: bool = False  # red also on photos whose verdict is "good"
  explain: bool = True  # a flagged photo with an empty mask shows its strongest region (EXPLAIN_SHARE)
  source: str = ""  # how it was chosen
  calibration: dict = dataclasses.field(default_factory=dict)  # what it scored on the synthetic cracks

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def decide(m: np.ndarray, d: Decision, *, scale: float = 1.0, border: int = 0, flagged: bool = True) -> np.ndarray:
  """A localization map [H, W] -> the red mask, bool [H, W]. scale: photo pixels per working pixel (the map was
  upsampled by it; min_length and border scale with it). flagged: the photo's verdict is "crack"."""
  m = np.asarray(m, np.float32)
  if not (flagged or d.on_good):
    return np.zeros(m.shape, bool)
  weak = _weak(m, d.low, int(round(border * scale)))
  lab, n = ndimage.label(weak, EIGHT)
  keep = np.zeros(n + 1, bool)
  if n:
    keep[1:] = _keep(ndimage.maximum(m, lab, np.arange(1, n + 1)), ndimage.find_objects(lab), d.high, d.min_length * scale)
  hot = keep[lab]
  if flagged and d.explain and not hot.any():
    return strongest_region(m, int(round(border * scale)))
  return hot


def strongest_region(m: np.ndarray, border: int = 0) -> np.ndarray:
  """bool [H, W]: the 8-connected part of the map's top EXPLAIN_SHARE (outside the border) that holds its peak."""
  inner = anomaly.interior(m, border)
  level = np.quantile(inner, 1.0 - EXPLAIN_SHARE)
  lab, _ = ndimage.label(_weak(m, level, border), EIGHT)
  off = (m.shape[0] - inner.shape[0]) // 2, (m.shape[1] - inner.shape[1]) // 2
  peak = np.unravel_index(np.argmax(inner), inner.shape)
  return lab == lab[peak[0] + off[0], peak[1] + off[1]]


def _weak(m: np.ndarray, low: float, border: int) -> np.ndarray:
  """bool [H, W]: map >= low, but for the outer `border` pixels (where the map has a frame to leave out)."""
  weak = m >= low
  if border > 0 and m.shape[0] > 2 * border and m.shape[1] > 2 * border:
    weak[:border], weak[-border:], weak[:, :border], weak[:, -border:] = False, False, False, False
  return weak


def _diagonals(boxes: list) -> np.ndarray:
  """Each component's length: the diagonal of its bounding box (ndimage.find_objects' slices), pixels."""
  return np.array([np.hypot(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in boxes])


def _keep(peaks: np.ndarray, boxes: list, high: float, min_length: float) -> np.ndarray:
  return (np.asarray(peaks) >= high) & (_diagonals(boxes) >= min_length)


def upsample(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """A map [h, w] -> [H, W] by bilinear interpolation (pixel centres aligned, as the photo was resized)."""
  m = np.asarray(m, np.float32)
  if m.shape == tuple(shape):
    return m
  return np.asarray(Image.fromarray(m, "F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def counts(mask: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """[tp, fp, fn] of a mask against a ground-truth mask (both [H, W])."""
  mask, gt = np.asarray(mask, bool), np.asarray(gt) > 0
  tp = int((mask & gt).sum())
  return np.array([tp, int(mask.sum()) - tp, int(gt.sum()) - tp], np.int64)


TOLERANCE = 2.0  # pixels: a red pixel this near a crack pixel is on it, and a crack pixel this near a red one is found


def tolerant_counts(mask: np.ndarray, gt: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
  """[red pixels within `tolerance` of a crack pixel, red pixels, crack pixels within `tolerance` of a red pixel,
  crack pixels] (Euclidean distances, photo pixels): a hand-drawn mask's border is a pixel or two off the crack's,
  which the exact counts score as misses and false alarms."""
  mask, gt = np.asarray(mask, bool), np.asarray(gt) > 0
  near_gt = ndimage.distance_transform_edt(~gt) <= tolerance if gt.any() else np.zeros(gt.shape, bool)
  near_red = ndimage.distance_transform_edt(~mask) <= tolerance if mask.any() else np.zeros(mask.shape, bool)
  return np.array([int((mask & near_gt).sum()), int(mask.sum()), int((gt & near_red).sum()), int(gt.sum())], np.int64)


def tolerant_scores(c: np.ndarray) -> dict:
  """precision, recall and F1 within the tolerance, from pooled tolerant_counts."""
  hit_red, red, hit_gt, n_gt = (int(v) for v in c)
  p = hit_red / red if red else None
  r = hit_gt / n_gt if n_gt else None
  f1 = None if p is None or r is None else (2 * p * r / (p + r) if p + r else 0.0)
  return {"precision": p, "recall": r, "f1": f1}


def scores_of(c: np.ndarray) -> dict:
  """precision, recall, F1 and IoU of pooled [tp, fp, fn] (None where undefined)."""
  tp, fp, fn = (int(v) for v in c)
  p = tp / (tp + fp) if tp + fp else None
  r = tp / (tp + fn) if tp + fn else None
  f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
  return {
    "precision": p,
    "recall": r,
    "f1": f1,
    "iou": tp / (tp + fp + fn) if tp + fp + fn else None,
    "tp": tp,
    "fp": fp,
    "fn": fn,
  }


def calibrate(maps: list[np.ndarray], masks: list[np.ndarray], *, border: int = 0, on_good: bool = False) -> Decision:
  """The grid point (low <= high from QUANTILES of the cracked maps' pixels, min_length from MIN_LENGTHS) with the
  highest pixel F1 pooled over every map (masks: {0, 1}, all zero for sound photos)."""
  pairs = [(np.asarray(m, np.float32), np.asarray(g) > 0) for m, g in zip(maps, masks) if np.asarray(g).any()]
  if not pairs:
    raise UserError("the mask calibration needs at least one photo with a synthetic crack")
  inner = lambda m: anomaly.interior(m, border)  # noqa: E731
  cracked = [m for m, _ in pairs]
  on_cracks = np.concatenate([inner(m)[inner(g)] for m, g in pairs])
  levels = np.unique(
    np.r_[np.quantile(np.concatenate([inner(m).ravel() for m in cracked]), QUANTILES), np.quantile(on_cracks, CRACK_QUANTILES)]
  )
  levels = np.unique(np.r_[levels, (levels[1:] + levels[:-1]) / 2])  # and midway between them
  n_gt = int(sum(int((np.asarray(g) > 0).sum()) for g in masks))
  best, grid = None, 0
  for low in levels:
    # One labelling per low; every (high, min_length) is then a filter on its components, all photos at once.
    peaks, diag, tps, sizes = [], [], [], []
    for m, g in zip(maps, masks):
      m = np.asarray(m, np.float32)
      lab, n = ndimage.label(_weak(m, low, border), EIGHT)
      if not n:
        continue
      idx = np.arange(1, n + 1)
      peaks.append(ndimage.maximum(m, lab, idx))
      diag.append(_diagonals(ndimage.find_objects(lab)))
      tps.append(ndimage.sum(np.asarray(g) > 0, lab, idx))
      sizes.append(np.bincount(lab.ravel(), minlength=n + 1)[1:])
    if not peaks:
      continue
    peaks, diag, tps, sizes = (np.concatenate(a) for a in (peaks, diag, tps, sizes))
    for high in levels[levels >= low]:
      for min_length in MIN_LENGTHS:
        k = (peaks >= high) & (diag >= min_length)
        tp = int(tps[k].sum())
        fp, fn = int(sizes[k].sum()) - tp, n_gt - tp
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        grid += 1
        if best is None or f1 > best[3]:
          best = (float(low), float(high), min_length, f1, (tp, fp, fn))
  low, high, min_length, _, c = best
  top = float(np.quantile(np.concatenate([inner(m).ravel() for m in cracked]), 0.999))
  return Decision(
    low=low,
    high=high,
    min_length=min_length,
    colour_max=max(top, 1.5 * high, 1e-6),
    on_good=on_good,
    source=f"pixel F1 on {len(cracked)} photos with synthetic cracks and {len(maps) - len(cracked)} sound photos",
    calibration={**scores_of(np.array(c)), "grid_points": grid},
  )


def save(path: str, d: Decision) -> None:
  tmp = path + ".tmp"
  with files.writing(path), open(tmp, "w") as f:
    json.dump(d.to_json(), f, indent=2)
  os.replace(tmp, path)


def load(path: str) -> Decision:
  with open(path) as f:
    return Decision(**json.load(f))
