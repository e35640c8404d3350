"""Ranks darkness terms under a teacher's map on val, without rescoring the teacher.

Takes the val maps of a run scored WITHOUT the darkness term (`--config.anomaly.darkness=0
--config.eval.save_maps=True`), the val photos from the same root, and prints val AUROC of max(map, w * D) for
each darkness D and weight w, pooled as the run pooled (top 4% minus median by default):

  python main.py --config=configs/ddim_50.py:data=ROOT --workdir=runs/cp --mode=evaluate --config.eval.test=False \
    --config.eval.name=val_maps_dark0 --config.eval.save_maps=True --config.anomaly.darkness=0
  python benchmarks/darkness_lab.py runs/cp/eval/val_maps_dark0/maps_val.npz --root=ROOT

D, each of the luminance L smoothed with 1 px (reference - L) / reference:
  global median   the reference is the image's median (crackjax's anomaly.relative_darkness)
  closing S       a grey closing of L with an S x S square (the local background over dark lines narrower than S)
  gauss bg S      L smoothed with a Gaussian of sigma S
  median bg S     a local median over an S x S square
Indicative: scipy's borders and the unpadded image differ slightly from the scorer's padded batches.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax import anomaly, metrics, report  # noqa: E402

WEIGHTS = (0.1, 0.2, 0.3, 0.5, 1.0)


def luminance(img: np.ndarray, sigma: float = 1.0) -> np.ndarray:
  """uint8 [H, W, 3] -> the luminance in [0, 1], smoothed with sigma."""
  lum = np.asarray(anomaly.luminance(img[None].astype(np.float32) / 127.5 - 1.0))[0]
  return ndimage.gaussian_filter(lum, sigma, mode="reflect")


def relative(ref: np.ndarray, lum: np.ndarray) -> np.ndarray:
  return (ref - lum) / np.maximum(ref, 1e-3)


DARKNESS = {
  "global median": lambda L: relative(np.full_like(L, np.median(L)), L),
  **{f"closing {s}": (lambda L, s=s: relative(ndimage.grey_closing(L, size=(s, s)), L)) for s in (7, 11, 15, 21, 31)},
  **{f"gauss bg {s}": (lambda L, s=s: relative(ndimage.gaussian_filter(L, s, mode="reflect"), L)) for s in (4, 8, 16)},
  **{f"median bg {s}": (lambda L, s=s: relative(ndimage.median_filter(L, size=(s, s)), L)) for s in (15, 31)},
}


def main(argv=None) -> list[tuple[str, float, float]]:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("maps", help="maps_val.npz of a run scored with --config.anomaly.darkness=0")
  ap.add_argument("--root", required=True, help="the data root the maps were scored on")
  ap.add_argument("--tfds_dir", default="", help="config.data.tfds_dir of the run (default: the config's)")
  ap.add_argument("--config", default="configs/ddim_50.py", help="the run's config file (for resize and data)")
  args = ap.parse_args(argv)
  from crackjax.data import builders, pipeline

  names, labels, maps = report.load_maps(args.maps)
  run_dir = os.path.dirname(os.path.abspath(args.maps))
  spec = importlib.util.spec_from_file_location("cfg", args.config)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(f"data={args.root}")
  if args.tfds_dir:
    c.data.tfds_dir = args.tfds_dir
  val = pipeline.load_split(builders.builder_for(c, run_dir, args.root), "val", resize=c.data.resize)
  where = {n: i for i, n in enumerate(val.filenames)}
  missing = [str(n) for n in names if str(n) not in where]
  if missing:
    sys.exit(f"{args.maps}: {len(missing)} maps have no val image under {args.root} (first: {missing[0]})")
  lums = [luminance(val.images[where[str(n)]]) for n in names]
  if any(L.shape != m.shape for L, m in zip(lums, maps)):
    sys.exit(f"{args.maps}: the maps are not at the val images' size at data.resize={c.data.resize}")
  labels = np.asarray(labels)

  def auroc(ms):
    s = [anomaly.image_score(m, **anomaly.pooling_of(c.anomaly)) for m in ms]
    return metrics.auroc(np.asarray(s), labels)

  rows = [("none (the maps as saved)", 0.0, auroc(maps))]
  print(f"{rows[0][0]:28s} AUROC {rows[0][2]:.4f}", flush=True)
  for name, fn in DARKNESS.items():
    dark = [fn(L) for L in lums]
    for w in WEIGHTS:
      rows.append((name, w, auroc([np.maximum(m, w * d) for m, d in zip(maps, dark)])))
      print(f"{name:20s} w = {w:<4} AUROC {rows[-1][2]:.4f}", flush=True)
  print("\n| darkness term | w | val AUROC |\n|---|---|---|")
  for name, w, a in sorted(rows, key=lambda r: -r[2])[:10]:
    print(f"| {name} | {w} | {a:.4f} |")
  return rows


if __name__ == "__main__":
  main()
