"""Rescores saved maps against the scores of the most similar sound photos of train/good, without rescoring a model.

The misses of the real-data score are faint lines on smooth plaster and its false alarms blemishes on busy surfaces:
one score means different things on different surfaces. This lab asks whether the scores of the k train/good photos
most like a photo (its luminance's mean and spread, its mean gradient magnitude, its map's median and MAD, each
standardized over train/good) make a better reference than none, with no label:

  shift   s - mean(s_i)
  z       (s - mean(s_i)) / std(s_i)

s the image score as `--config` pools with `:data=ROOT` (crackjax's topk_mad by default), s_i those of the k nearest
train/good photos. The train/good maps are the ones a student caches (`--cache`: one <student.cache_dir>/<digest>
folder of shard_*.npz, whose names are the pool's, 'train/<file>' for train/good photos). Each MAPS:ROOT:SPLIT is a
saved maps_<split>.npz (`--config.eval.save_maps=True`) and the root and split it was scored on:

  python benchmarks/reference_lab.py --cache=runs/cp_teacher_maps/8ab92dfe1988 --root=../shared/data/concrete_pavement \
    runs/cp/eval/val_maps_s18/maps_val.npz:../shared/data/concrete_pavement:val \
    runs/cp/eval/syncracks_img/maps_test.npz:runs/cp_syncracks:test

It prints image AUROC of the score as it is and of each variant for each k. Indicative: a lab, not main.py.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import darkness_lab  # noqa: E402
from crackjax import anomaly, metrics, report  # noqa: E402


def describe(img: np.ndarray, m: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] and its map [H, W] -> [5]: luminance mean, its std, mean gradient magnitude, map median, map MAD."""
  lum = darkness_lab.luminance(img, 1.0)
  grad = np.hypot(ndimage.sobel(lum, 0, mode="reflect"), ndimage.sobel(lum, 1, mode="reflect"))
  med = float(np.median(m))
  return np.array([lum.mean(), lum.std(), grad.mean(), med, np.median(np.abs(m - med))], np.float64)


def rescore(s: np.ndarray, feats: np.ndarray, ref_s: np.ndarray, ref_feats: np.ndarray, k: int) -> dict:
  """Scores [N] with features [N, F] against a reference set: {'shift': [N], 'z': [N]} (features standardized by
  the reference's mean and std; Euclidean k nearest)."""
  mu, sd = ref_feats.mean(0), ref_feats.std(0) + 1e-12
  a, b = (feats - mu) / sd, (ref_feats - mu) / sd
  d2 = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
  nn = np.argpartition(d2, k - 1, axis=1)[:, :k]
  mean, std = ref_s[nn].mean(1), ref_s[nn].std(1)
  return {"shift": s - mean, "z": (s - mean) / np.maximum(std, 1e-6)}


def load_images(config, root: str, split: str, tfds_dir: str):
  from crackjax.data import builders, pipeline

  config.data.tfds_dir = tfds_dir
  sp = pipeline.load_split(builders.builder_for(config, "", root), split, resize=config.data.resize)
  return dict(zip(sp.filenames, sp.images))


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("sets", nargs="+", help="MAPS:ROOT:SPLIT, a saved maps_<split>.npz and the root and split it scored")
  ap.add_argument("--cache", required=True, help="a student's teacher-map cache folder (shard_*.npz) of the pool")
  ap.add_argument("--root", required=True, help="the data root whose train/good the cache holds")
  ap.add_argument("--config", default="configs/ddim_50.py", help="pools with this config's :data=ROOT settings")
  ap.add_argument("--ks", default="10,25,50,100", help="comma-separated neighbour counts k")
  ap.add_argument("--tfds_dir", default="runs/cp/tfds", help="prepared data (the teacher workdir's tfds/)")
  args = ap.parse_args(argv)
  c = darkness_lab.data_config(args.config, args.root)
  pool = anomaly.pooling_of(c.anomaly)

  shards = sorted(glob.glob(os.path.join(args.cache, "shard_*.npz")))
  if not shards:
    sys.exit(f"--cache={args.cache}: no shard_*.npz there (a student's <cache_dir>/<digest> folder)")
  ref_maps = {}
  for path in shards:
    with np.load(path) as z:
      for i, n in enumerate(z["names"]):
        if str(n).startswith("train/"):
          ref_maps[str(n)[len("train/") :]] = z[f"m{i}"].astype(np.float32)
  train = load_images(c, args.root, "train", args.tfds_dir)
  both = sorted(set(ref_maps) & set(train))
  if not both:
    sys.exit(f"--cache={args.cache}: none of its train maps match {args.root}'s train photos")
  ref_s = np.array([anomaly.image_score(ref_maps[n], **pool) for n in both])
  ref_f = np.stack([describe(train[n], ref_maps[n]) for n in both])
  print(f"reference: {len(both)} train/good photos, score mean {ref_s.mean():.3f} std {ref_s.std():.3f}")
  ks = [int(k) for k in args.ks.split(",")]
  if not all(0 < k <= len(both) for k in ks):
    sys.exit(f"--ks={args.ks}: each k must lie in 1..{len(both)} (the reference's photos)")

  for item in args.sets:
    maps_path, root, split = item.rsplit(":", 2)
    names, labels, maps = report.load_maps(maps_path)
    imgs = load_images(c, root, split, args.tfds_dir)
    missing = [str(n) for n in names if str(n) not in imgs]
    if missing:
      sys.exit(f"{maps_path}: {len(missing)} maps have no {split} image under {root} (first: {missing[0]})")
    labels = np.asarray(labels)
    s = np.array([anomaly.image_score(m, **pool) for m in maps])
    f = np.stack([describe(imgs[str(n)], m) for n, m in zip(names, maps)])
    print(f"{maps_path} ({split}, {int((labels == 0).sum())} good + {int((labels == 1).sum())} cracked)")
    print(f"  as it is      AUROC {metrics.auroc(s, labels):.5f}")
    for k in ks:
      out = rescore(s, f, ref_s, ref_f, k)
      print(f"  k {k:3d}  shift AUROC {metrics.auroc(out['shift'], labels):.5f}   z AUROC {metrics.auroc(out['z'], labels):.5f}")
    sys.stdout.flush()


if __name__ == "__main__":
  main()
