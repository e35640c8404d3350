"""The red masks a `--mode=predict` run wrote, measured as the user receives them: against ground-truth masks at
the photo's own resolution (pixel precision, recall, F1, IoU, pooled), and how much of each photo is red.

    python main.py --config=configs/ddim_50.py:data=../shared/data/concrete_pavement --workdir=runs/cp --mode=predict \
      --config.predict.input=../shared/data/deepcrack/test/crack --config.predict.name=deepcrack
    python benchmarks/mask_quality.py runs/cp/predict/deepcrack --masks=../shared/data/deepcrack/ground_truth/crack

Reads <predict folder>/predictions.csv and masks/ (any version of predict: a mask is the PNG's alpha, or its red
channel where it has none); --masks: a folder of <stem>_mask.png (white = crack; a mask of another size than the
red one is resized to it, nearest). --every=K keeps every K-th photo by file name. Prints one table and writes
mask_quality.json beside predictions.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax import mask as mask_lib  # noqa: E402
from crackjax import predict  # noqa: E402


def red_of(path: str) -> np.ndarray:
  a = np.asarray(Image.open(path))
  return a[..., 3] > 0 if a.ndim == 3 and a.shape[2] == 4 else a[..., 0] > 0


def measure(folder: str, masks: str = "", every: int = 1) -> dict:
  with open(os.path.join(folder, "predictions.csv"), newline="") as f:
    rows = sorted((r for r in csv.DictReader(f) if r["score"]), key=lambda r: r["file"])[::every]
  if not rows:
    raise ValueError(f"{folder}/predictions.csv holds no scored photo")
  src = os.path.commonpath([os.path.dirname(r["file"]) for r in rows]) if len(rows) > 1 else os.path.dirname(rows[0]["file"])
  counts, shares, n_gt = np.zeros(3, np.int64), {"crack": [], "good": []}, 0
  for r in rows:
    red = red_of(os.path.join(folder, "masks", predict.output_name(r["file"], src)))
    shares[r["verdict"]].append(float(red.mean()))
    gt_path = os.path.join(masks, os.path.splitext(os.path.basename(r["file"]))[0] + "_mask.png") if masks else ""
    if gt_path and os.path.exists(gt_path):
      gt = np.asarray(Image.open(gt_path).convert("L")) > 127
      if gt.shape != red.shape:  # a mask written at the model's resolution: compared at the photo's
        red = np.asarray(Image.fromarray(red).resize((gt.shape[1], gt.shape[0]), Image.Resampling.NEAREST))
      counts += mask_lib.counts(red, gt)
      n_gt += 1
  med = lambda v: float(np.median(v)) if v else None  # noqa: E731
  out = {
    "folder": folder,
    "photos": len(rows),
    "flagged": len(shares["crack"]),
    "passed": len(shares["good"]),
    "median_red_share_flagged": med(shares["crack"]),
    "median_red_share_passed": med(shares["good"]),
    "max_red_share": max(shares["crack"] + shares["good"]),
    "photos_without_red": float(np.mean([s == 0 for s in shares["crack"] + shares["good"]])),
    "passed_without_red": float(np.mean([s == 0 for s in shares["good"]])) if shares["good"] else None,
  }
  if n_gt:
    out.update(mask_lib.scores_of(counts), photos_with_ground_truth=n_gt)
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("folder", help="a predict output folder (holds predictions.csv and masks/)")
  ap.add_argument("--masks", default="", help="folder of <stem>_mask.png ground truth")
  ap.add_argument("--every", type=int, default=1, help="every K-th photo by file name")
  a = ap.parse_args(argv)
  out = measure(a.folder, a.masks, a.every)
  for k, v in out.items():
    print(f"{k:28s} {v if not isinstance(v, float) else f'{v:.4f}'}")
  with open(os.path.join(a.folder, "mask_quality.json"), "w") as f:
    json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
