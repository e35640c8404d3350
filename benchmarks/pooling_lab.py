"""Ranks ways of turning saved maps into image scores, on val, without rescoring a model.

A run evaluated with `--config.eval.save_maps=True` writes every val map (maps_val.npz, next to its metrics.json);
this script pools them every way listed below (first as the run itself did, from the metrics.json beside the
file) and prints val AUROC / AP of each, so that a pooling idea costs
seconds instead of a model's scoring. Only val: settings are chosen there, and a pooling that wins here is then
built into crackjax and scored through main.py like any other setting (test once).

  python main.py --config=configs/ddim_50.py:data=ROOT --workdir=runs/cp --config.eval.test=False \
    --config.eval.name=val_maps --config.eval.save_maps=True --config.anomaly.localization_darkness=0
  python benchmarks/pooling_lab.py runs/cp/eval/val_maps/maps_val.npz

Poolings (each a pure function of one map [H, W]):
  topk_minus_median@f   the mean of the top f of the map minus its median
  topk_mad@f floor F border B
                        crackjax's 'topk_mad': (top f - median) / (MAD + F), of the map less its outer B pixels
                        (anomaly.mad_floor, anomaly.border; the :data= default since session 12: f 0.02, F 0.015, B 4)
  floor_z@c             (top 4% - median) / (MAD + c * the median MAD of val-good maps): between the default
                        (c large) and the robust z-score (c = 0)
  opening@L             the map opened with line segments of L pixels at 8 orientations (a pixel keeps the
                        largest value sustained along a segment through it), then top 4% minus median
  component@q           the largest sum of (map - tau) over one 8-connected component above tau, tau the q-th
                        percentile of val-good map pixels
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax import anomaly, metrics, report  # noqa: E402

ANGLES = np.arange(8) * np.pi / 8


def topk_minus_median(m: np.ndarray, f: float = 0.04) -> float:
  return anomaly.image_score(m, pooling="topk_minus_median", topk_fraction=f)


def mad(m: np.ndarray) -> float:
  return float(np.median(np.abs(m - np.median(m))))


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """m moved by (dy, dx), edges repeated: out[i, j] = m[i - dy, j - dx] (clipped)."""
  h, w = m.shape
  rows = np.clip(np.arange(h) - dy, 0, h - 1)
  cols = np.clip(np.arange(w) - dx, 0, w - 1)
  return m[np.ix_(rows, cols)]


def segment_offsets(length: int, angle: float) -> list[tuple[int, int]]:
  """The integer pixel offsets of a segment of `length` pixels through 0 at `angle` (no repeats)."""
  h = (length - 1) / 2
  pts = {(int(round(k * np.sin(angle))), int(round(k * np.cos(angle)))) for k in np.linspace(-h, h, length)}
  return sorted(pts)


def line_opening(m: np.ndarray, length: int) -> np.ndarray:
  """Grey-level opening by line segments of `length` pixels, the max over 8 orientations: erosion (min over the
  segment) then dilation (max over the mirrored segment). A line at least `length` long keeps its height; a blob
  shorter than the segment in every direction drops to its surroundings."""
  best = np.full(m.shape, -np.inf, np.float32)
  for a in ANGLES:
    offs = segment_offsets(length, a)
    eroded = np.min([_shift(m, dy, dx) for dy, dx in offs], axis=0)
    opened = np.max([_shift(eroded, -dy, -dx) for dy, dx in offs], axis=0)
    best = np.maximum(best, opened)
  return best


def component_mass(m: np.ndarray, tau: float) -> float:
  above = m > tau
  if not above.any():
    return 0.0
  lab, n = ndimage.label(above, structure=np.ones((3, 3)))
  return float(ndimage.sum_labels(m - tau, lab, index=np.arange(1, n + 1)).max())


def rank(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
  return metrics.auroc(scores, labels), metrics.average_precision(scores, labels)


def main(argv=None) -> list[tuple[str, float, float]]:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("maps", help="a maps_val.npz written by --config.eval.save_maps=True")
  ap.add_argument("--lengths", default="7,11,15,21", help="opening@L segment lengths, pixels")
  ap.add_argument("--floors", default="0.01,0.015,0.02,0.03", help="anomaly.mad_floor values for topk_mad rows")
  ap.add_argument("--borders", default="0,2,4,6,8", help="anomaly.border values (map pixels) for topk_mad rows")
  args = ap.parse_args(argv)
  try:
    report.check_image_maps(args.maps)
  except ValueError as e:
    sys.exit(str(e))
  names, labels, maps = report.load_maps(args.maps)
  labels = np.asarray(labels)
  if not ((labels == 0).any() and (labels == 1).any()):
    sys.exit(f"{args.maps}: needs good and cracked maps to rank poolings, got labels {sorted(set(labels.tolist()))}")
  good = [m for m, y in zip(maps, labels) if y == 0]
  rows = []

  def add(name, fn):
    s = np.array([fn(m) for m in maps], np.float64)
    rows.append((name, *rank(s, labels)))
    print(f"{name:28s} AUROC {rows[-1][1]:.4f}  AP {rows[-1][2]:.4f}", flush=True)

  run = os.path.join(os.path.dirname(os.path.abspath(args.maps)), "metrics.json")
  if os.path.exists(run):  # the run's own pooling first: its AUROC is the one in metrics.json's val section
    with open(run) as fh:
      model = json.load(fh)["model"]
    pool = anomaly.pooling_of(model)
    add("as run: " + ", ".join(f"{k} {v}" for k, v in pool.items()), lambda m: anomaly.image_score(m, **pool))
  for f in (0.01, 0.02, 0.04, 0.08):
    add(f"topk_minus_median@{f}", lambda m, f=f: topk_minus_median(m, f))
  mad0 = float(np.median([mad(m) for m in good]))
  for c in (0.0, 0.5, 1, 2, 4, 8):
    add(f"floor_z@{c}", lambda m, c=c: topk_minus_median(m) / (mad(m) + c * mad0 + anomaly.MAD_FLOOR))
  for b in (int(v) for v in args.borders.split(",")):
    pool = {"pooling": "topk_minus_median", "topk_fraction": 0.02, "border": b}
    add(f"topk_minus_median@0.02 border {b}", lambda m, pool=pool: anomaly.image_score(m, **pool))
    for fl in (float(v) for v in args.floors.split(",")):
      for f in (0.02, 0.04):
        pool = {"pooling": "topk_mad", "topk_fraction": f, "mad_floor": fl, "border": b}
        add(f"topk_mad@{f} floor {fl} border {b}", lambda m, pool=pool: anomaly.image_score(m, **pool))
  for L in (int(v) for v in args.lengths.split(",")):
    add(f"opening@{L}", lambda m, L=L: topk_minus_median(line_opening(m, L)))
  pix = np.concatenate([m.ravel() for m in good])
  for q in (98.0, 99.0, 99.5, 99.9):
    tau = float(np.percentile(pix, q))
    add(f"component@{q}", lambda m, tau=tau: component_mass(m, tau))
  print(f"\n{len(labels)} val maps ({int((labels == 0).sum())} good, {int(labels.sum())} cracked) from {args.maps}")
  print("| pooling | val AUROC | val AP |\n|---|---|---|")
  for name, auc, a in sorted(rows, key=lambda r: -r[1]):
    print(f"| {name} | {auc:.4f} | {a:.4f} |")
  return rows


if __name__ == "__main__":
  main()
