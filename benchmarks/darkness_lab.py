"""Ranks darkness terms under a teacher's map on val, without rescoring the teacher.

Takes the val maps of a run scored WITHOUT the darkness terms (`--config.anomaly.darkness=0
--config.anomaly.localization_darkness=0 --config.eval.save_maps=True`), the val photos from the same root, and
prints val AUROC of fuse(map, w * D) for each darkness D, weight w and fusion (`--fusions`: 'max', the pixelwise
max, crackjax's anomaly.darkness; 'sum', map + w D, where D < 0 on surfaces brighter than the reference lowers the
map; 'max+sum', the image map max(map, a D) plus w D, a the config's anomaly.darkness: crackjax's localization map,
anomaly.localization_darkness, with D the 'global mean'; 'mean+zscore K' with anomaly.localization_zscore = K),
pooled as
`--config` pools with `:data=ROOT` (configs/ddim_50.py by default: the real-data score, configs/base.py):

  python main.py --config=configs/ddim_50.py:data=ROOT --workdir=runs/cp --mode=evaluate --config.eval.test=False \
    --config.eval.name=val_maps_dark0 --config.eval.save_maps=True --config.anomaly.darkness=0 \
    --config.anomaly.localization_darkness=0
  python benchmarks/darkness_lab.py runs/cp/eval/val_maps_dark0/maps_val.npz --root=ROOT

D, each of the luminance L smoothed with 1 px (reference - L) / reference:
  global median   the reference is the image's median (crackjax's anomaly.relative_darkness)
  global mean     the reference is the image's mean (crackjax's anomaly.localization_map)
  global zscore   (mean - L) / std(L): the darkness in units of the image's own spread, not of its brightness
  zscore floor F  (mean - L) / max(std(L), F): the z-score, its spread floored at F (luminance in [0, 1])
  mean+zscore K   global mean + K global zscore
  mean+local zscore S  global mean + 0.05 (local mean - L) / local std, Gaussian-weighted with sigma S
  bg S+zscore K   mean+zscore K with the reference a Gaussian background of sigma S instead of the mean
  global mad      (median - L) / (1.4826 MAD(L)): the same with robust statistics
  closing S       a grey closing of L with an S x S square (the local background over dark lines narrower than S)
  gauss bg S      L smoothed with a Gaussian of sigma S
  median bg S     a local median over an S x S square
  line median     the global-median D through the map's oriented line filter (anomaly.line_sigma and
                  smoothing_sigma): a dark line keeps its height, a dark pit or grain is averaged down
  line median 2   the max of that and the same at half resolution (2x2 means, upsampled): wide dark cracks
`--full_res=max|mean` takes D from the photo at full resolution (the luminance smoothed with --lum_sigma full-res
pixels), brought to the map's size by the max over each map pixel's 2x2 full-resolution pixels ('max': a 1 px
hairline keeps its full darkness) or by a box resize ('mean', the control: as the half-resolution photo averages it).
`--split=test` ranks a split's saved maps_test.npz the same way and, where the split has pixel masks (DeepCrack),
adds pixel AUROC / AUPRO / AP (report.split_pixel_metrics, as evaluation computes them): for reporting a choice
made on val, never for making it.
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


def data_config(path: str, root: str):
  """The config file at `path` (configs/ddim_50.py) as `:data=root` resolves it: the real-data score's settings."""
  spec = importlib.util.spec_from_file_location("cfg", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(f"data={root}")


def relative(ref: np.ndarray, lum: np.ndarray) -> np.ndarray:
  return (ref - lum) / np.maximum(ref, 1e-3)


def local_z(lum: np.ndarray, s: float) -> np.ndarray:
  """(local mean - L) / local std, both Gaussian-weighted with sigma s."""
  mu = ndimage.gaussian_filter(lum, s, mode="reflect")
  var = ndimage.gaussian_filter(lum * lum, s, mode="reflect") - mu * mu
  return (mu - lum) / np.sqrt(np.maximum(var, 1e-6))


def mean_plus_local_z(lum: np.ndarray, s: float) -> np.ndarray:
  return relative(np.full_like(lum, lum.mean()), lum) + 0.05 * local_z(lum, s)


def bg_zscore(lum: np.ndarray, s: float, k: float = 0.05) -> np.ndarray:
  """(bg - L)(1 / bg + k / std(L)), bg the luminance smoothed with sigma s: 'mean+zscore K' against a local
  background, which follows a photo's uneven lighting."""
  bg = ndimage.gaussian_filter(lum, s, mode="reflect")
  return (bg - lum) * (1 / np.maximum(bg, 1e-3) + k / max(float(lum.std()), 1e-3))


DARKNESS = {
  "global median": lambda L: relative(np.full_like(L, np.median(L)), L),
  "global mean": lambda L: relative(np.full_like(L, L.mean()), L),
  "global zscore": lambda L: (L.mean() - L) / max(float(L.std()), 1e-3),
  **{f"zscore floor {f}": (lambda L, f=f: (L.mean() - L) / max(float(L.std()), f)) for f in (0.02, 0.05, 0.1)},
  **{
    f"mean+zscore {k}": (lambda L, k=k: (L.mean() - L) * (1 / max(L.mean(), 1e-3) + k / max(float(L.std()), 1e-3)))
    for k in (0.02, 0.03, 0.05, 0.1, 0.3)
  },
  **{f"mean+local zscore {s}": (lambda L, s=s: mean_plus_local_z(L, s)) for s in (8, 16, 32)},
  **{f"bg {s}+zscore 0.05": (lambda L, s=s: bg_zscore(L, s)) for s in (8, 16, 32, 64)},
  **{f"bg 64+zscore {k}": (lambda L, k=k: bg_zscore(L, 64, k)) for k in (0.0, 0.02, 0.1)},
  "global mad": lambda L: (np.median(L) - L) / max(1.4826 * float(np.median(np.abs(L - np.median(L)))), 1e-3),
  **{f"closing {s}": (lambda L, s=s: relative(ndimage.grey_closing(L, size=(s, s)), L)) for s in (7, 11, 15, 21, 31)},
  **{f"gauss bg {s}": (lambda L, s=s: relative(ndimage.gaussian_filter(L, s, mode="reflect"), L)) for s in (4, 8, 16)},
  **{f"median bg {s}": (lambda L, s=s: relative(ndimage.median_filter(L, size=(s, s)), L)) for s in (15, 31)},
}
FUSIONS = {  # (map, D, w, a) -> fused map; a = the config's anomaly.darkness (the image map's weight)
  "max": lambda m, d, w, a: np.maximum(m, w * d),
  "sum": lambda m, d, w, a: m + w * d,
  "max+sum": lambda m, d, w, a: np.maximum(m, a * d) + w * d,
}


def line_filtered(d: np.ndarray, c) -> np.ndarray:
  """D [H, W] through the map's oriented line filter (the config's anomaly.line_sigma and smoothing_sigma)."""
  return np.asarray(anomaly.line_filter(d[None], c.anomaly.line_sigma, c.anomaly.smoothing_sigma))[0]


def to_map(d: np.ndarray, shape: tuple[int, int], pool: str) -> np.ndarray:
  """A full-resolution D [H, W] brought to the map's shape (about half each side): 'max', the largest of the 2x2
  full-resolution pixels from floor(i H / h) on for map pixel i (every full-resolution pixel falls in one, so a
  1 px hairline keeps its full darkness); 'mean', the box resize pipeline.resize_image gives the photo itself."""
  from PIL import Image

  if pool == "max":
    rows, cols = (np.minimum(np.arange(n) * big // n, big - 2) for n, big in zip(shape, d.shape))
    return np.max([d[rows + i][:, cols + j] for i in (0, 1) for j in (0, 1)], axis=0).astype(np.float32)
  return np.asarray(Image.fromarray(d.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.Resampling.BOX))


def main(argv=None) -> list[tuple[str, str, float, list[float]]]:
  """Rows (darkness, fusion, w, [image AUROC, then pixel AUROC, AUPRO, AP where the split has masks])."""
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("maps", help="maps_val.npz of a run scored with --config.anomaly.darkness=0")
  ap.add_argument("--root", required=True, help="the data root the maps were scored on")
  ap.add_argument("--tfds_dir", default="", help="config.data.tfds_dir of the run (default: the config's)")
  ap.add_argument("--config", default="configs/ddim_50.py", help="the run's config file (for resize and data)")
  ap.add_argument("--fusions", default="max", help="comma-separated: " + ", ".join(FUSIONS))
  ap.add_argument("--darkness", default="", help="comma-separated names of D to try (default: all)")
  ap.add_argument("--split", default="val", help="the split the maps were scored on: val | test")
  ap.add_argument("--weights", default=",".join(map(str, WEIGHTS)), help="comma-separated weights w")
  ap.add_argument("--lum_sigma", type=float, default=1.0, help="the luminance's smoothing (the config's darkness.sigma)")
  ap.add_argument(
    "--sum_sigma", type=float, default=None,
    help="max+sum only: the luminance's smoothing of the summed term w D (the config's anomaly.localization_sigma); "
    "the image map's max(map, a D) keeps --lum_sigma (default: --lum_sigma for both)",
  )  # fmt: skip
  ap.add_argument("--full_res", default="", choices=("", "max", "mean"), help="D from the full-resolution photo")
  args = ap.parse_args(argv)
  from crackjax.data import builders, pipeline

  try:
    report.check_image_maps(args.maps)
  except ValueError as e:
    sys.exit(str(e))
  names, labels, maps = report.load_maps(args.maps)
  run_dir = os.path.dirname(os.path.abspath(args.maps))
  c = data_config(args.config, args.root)
  if args.tfds_dir:
    c.data.tfds_dir = args.tfds_dir
  split = pipeline.load_split(builders.builder_for(c, run_dir, args.root), args.split, resize=c.data.resize)
  where = {n: i for i, n in enumerate(split.filenames)}
  missing = [str(n) for n in names if str(n) not in where]
  if missing:
    sys.exit(f"{args.maps}: {len(missing)} maps have no {args.split} image under {args.root} (first: {missing[0]})")
  order = [where[str(n)] for n in names]
  sub = pipeline.Split(  # the split in the maps' order
    images=[split.images[i] for i in order], masks=[split.masks[i] for i in order], has_mask=split.has_mask[order],
    labels=split.labels[order], filenames=[split.filenames[i] for i in order],
  )  # fmt: skip
  lums = [luminance(img, args.lum_sigma) for img in sub.images]
  full = None
  if args.full_res:
    fsplit = pipeline.load_split(builders.builder_for(c, run_dir, args.root), args.split, resize=1.0)
    fwhere = {n: i for i, n in enumerate(fsplit.filenames)}
    full = [luminance(fsplit.images[fwhere[str(n)]], args.lum_sigma) for n in names]
  sum_sigma = args.lum_sigma if args.sum_sigma is None else args.sum_sigma
  lums_sum = lums if sum_sigma == args.lum_sigma else [luminance(img, sum_sigma) for img in sub.images]
  if any(L.shape != m.shape for L, m in zip(lums, maps)):
    sys.exit(f"{args.maps}: the maps are not at the {args.split} images' size at data.resize={c.data.resize}")
  labels = np.asarray(labels)
  ranked = (labels == 0).any() and (labels == 1).any()
  pixel = report.pixel_metric_images(sub).any()

  def auroc(ms):
    """[image AUROC (NaN with one class), then pixel AUROC, AUPRO, AP where the split has masks]"""
    s = [anomaly.image_score(m, **anomaly.pooling_of(c.anomaly)) for m in ms]
    out = [metrics.auroc(np.asarray(s), labels) if ranked else float("nan")]
    if pixel:
      pm = report.split_pixel_metrics(sub, ms)
      out += [pm["auroc"], pm["aupro"], pm["ap"]]
    return out

  fusions = args.fusions.split(",")
  unknown = [f for f in fusions if f not in FUSIONS]
  if unknown:
    sys.exit(f"--fusions: unknown {unknown}; one of {sorted(FUSIONS)}")

  def line_median(L):
    return line_filtered(DARKNESS["global median"](L), c)

  def line_median2(L):
    h, w = (L.shape[0] // 2) * 2, (L.shape[1] // 2) * 2
    half = L[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    up = np.repeat(np.repeat(line_median(half), 2, 0), 2, 1)
    return np.maximum(line_median(L), np.pad(up, ((0, L.shape[0] - h), (0, L.shape[1] - w)), mode="edge"))

  kinds = {**DARKNESS, "line median": line_median, "line median 2": line_median2}
  names_d = args.darkness.split(",") if args.darkness else list(kinds)
  if any(n not in kinds for n in names_d):
    sys.exit(f"--darkness: one of {sorted(kinds)}, got {names_d}")
  weights = [float(w) for w in args.weights.split(",")]

  def show(vals):
    return "  ".join(f"{k} {v:.4f}" for k, v in zip(("AUROC", "pixel AUROC", "AUPRO", "pixel AP"), vals))

  rows = [("none (the maps as saved)", "", 0.0, auroc(maps))]
  print(f"{rows[0][0]:28s} {show(rows[0][3])}", flush=True)
  for name in names_d:
    if full is not None:
      dark = [to_map(kinds[name](F), L.shape, args.full_res) for F, L in zip(full, lums)]
    else:
      dark = [kinds[name](L) for L in lums]
    dark_sum = dark if lums_sum is lums else [kinds[name](L) for L in lums_sum]
    for fusion in fusions:
      for w in weights:
        if fusion == "max+sum":  # the image map's term at --lum_sigma, the summed term at --sum_sigma
          fused = [np.maximum(m, c.anomaly.darkness * d) + w * ds for m, d, ds in zip(maps, dark, dark_sum)]
        else:
          fused = [FUSIONS[fusion](m, d, w, c.anomaly.darkness) for m, d in zip(maps, dark)]
        rows.append((name, fusion, w, auroc(fused)))
        print(f"{name:20s} {fusion:7s} w = {w:<4} {show(rows[-1][3])}", flush=True)
  cols = ["image AUROC"] + (["pixel AUROC", "AUPRO", "pixel AP"] if pixel else [])
  print(f"\n{len(maps)} {args.split} maps from {args.maps}")
  print(f"| darkness term | fusion | w | {' | '.join(cols)} |\n|---|---|---|{'---|' * len(cols)}")
  key = (lambda r: -r[3][0]) if ranked else (lambda r: -r[3][1])
  for name, fusion, w, a in sorted(rows, key=key)[:12]:
    print(f"| {name} | {fusion} | {w} | {' | '.join(f'{v:.4f}' for v in a)} |")
  return rows


if __name__ == "__main__":
  main()
