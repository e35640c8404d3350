"""Runs a crackjax export folder on images: needs jax (with the numpy and scipy it installs) and Pillow, not crackjax.

    python crackjax_export.py FOLDER_OR_IMAGE [--out predictions.csv]

writes predictions.csv (file, score, verdict, threshold, red share, error) and, beside it, masks/<file>.png: the
red mask at the photo's own size, as crackjax's predict draws it. From Python: `model = Exported(folder); score,
verdict, loc, red = model.predict(path)` (loc: the localization map the red mask is decided on; the score is
pooled from the exported function's image map; red: bool [H, W] at the photo's size).

The preprocessing, pooling, localization and the red mask's decision below are copies of crackjax's
(crackjax/data/decode.py, pipeline.resize_image, scorer.pieces, anomaly.image_score, anomaly.localization_map,
mask.decide and mask.upsample) so that this file runs alone; tests check that both give the same maps, scores,
verdicts and masks (tests/test_inspection.py).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import zlib

import jax
import numpy as np
from jax import export as jax_export
from PIL import Image, ImageOps
from scipy import ndimage

FORMAT = "crackjax-export/1"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


MIN_SIDE = 8  # pixels; smaller images are rejected (as crackjax/data/decode.py does)


def read_rgb(path: str) -> np.ndarray:
  with Image.open(path) as im:
    if min(im.size) < MIN_SIDE:
      raise ValueError(f"image too small ({im.size[0]}x{im.size[1]}; need at least {MIN_SIDE}x{MIN_SIDE})")
    im.load()
    try:  # upright as a viewer shows it (EXIF orientation), as crackjax/data/decode.py reads photos
      im = ImageOps.exif_transpose(im)
    except Exception:
      pass
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
      rgba = im.convert("RGBA")
      return np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB"))
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
      a = np.asarray(im).astype(np.float64)
      hi = 65535.0 if a.max() > 255 else 255.0
      return np.repeat(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def resize(img: np.ndarray, factor: float) -> np.ndarray:
  if factor == 1.0:
    return img
  h, w = img.shape[:2]
  size = (max(1, round(w * factor)), max(1, round(h * factor)))
  return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC))


def bucket_side(n: int, multiple: int) -> int:
  v = 16
  while True:
    for c in (v, v * 3 // 2):
      c = -(-c // multiple) * multiple
      if c >= n:
        return c
    v *= 2


def pad_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
  return np.pad(x, ((0, h - x.shape[0]), (0, w - x.shape[1]), (0, 0)), mode="symmetric")


def pieces(img: np.ndarray, multiple: int, tile: dict) -> list:
  """[(x [h, w, 3] in [-1, 1], (rows, cols) of the image map, (rows, cols) of the piece map)]."""
  h, w = img.shape[:2]
  x = img.astype(np.float32) / 127.5 - 1.0
  if max(h, w) <= tile["max_side"]:
    return [
      (pad_to(x, bucket_side(h, multiple), bucket_side(w, multiple)), (slice(0, h), slice(0, w)), (slice(0, h), slice(0, w)))
    ]
  size = -(-tile["size"] // multiple) * multiple
  ov = tile["overlap"]
  stride = (size - 2 * ov) // multiple * multiple
  starts = lambda n: list(range(0, max(n - size, 0) + stride, stride)) if n > size else [0]  # noqa: E731
  keep = lambda s, n: (s + (ov if s > 0 else 0), min(n, s + size - (ov if s + size < n else 0)))  # noqa: E731
  ys, xs = starts(h), starts(w)
  xp = pad_to(x, ys[-1] + size, xs[-1] + size)
  out = []
  for y0 in ys:
    ya, yb = keep(y0, h)
    for x0 in xs:
      xa, xb = keep(x0, w)
      out.append(
        (xp[y0 : y0 + size, x0 : x0 + size], (slice(ya, yb), slice(xa, xb)), (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0)))
      )
  return out


def image_score(m: np.ndarray, pooling: str, topk_fraction: float, mad_floor: float = 1e-3, border: int = 0) -> float:
  m = np.asarray(m, np.float32)
  h, w = m.shape
  if 0 < border and 2 * border < min(h, w):  # the frame is left out of the score
    m = m[border : h - border, border : w - border]
  flat = m.ravel()
  if pooling == "max":
    return float(flat.max())
  k = max(1, int(round(topk_fraction * flat.size)))
  top = float(np.partition(flat, flat.size - k)[flat.size - k :].mean())
  if pooling == "topk":
    return top
  med = float(np.median(flat))
  if pooling == "topk_minus_median":
    return top - med
  return (top - med) / (float(np.median(np.abs(flat - med))) + mad_floor)  # 'topk_mad'


LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def gaussian_smooth(m: np.ndarray, sigma: float) -> np.ndarray:
  """[H, W] separable Gaussian (radius round(3 sigma), NumPy's 'reflect' borders), as crackjax's anomaly.gaussian_smooth."""
  if sigma <= 0:
    return m
  r = max(1, int(round(3.0 * sigma)))
  k = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float64) / sigma) ** 2)
  k = (k / k.sum()).astype(np.float32)
  h, w = m.shape
  x = np.pad(m, ((r, r), (0, 0)), mode="reflect")
  x = sum(k[i] * x[i : i + h] for i in range(2 * r + 1))
  x = np.pad(x, ((0, 0), (r, r)), mode="reflect")
  return sum(k[i] * x[:, i : i + w] for i in range(2 * r + 1)).astype(np.float32)


def gaussian_operator(n: int, sigma: float) -> np.ndarray:
  """[n, n]: gaussian_smooth along an axis of length n as one matrix (crackjax's anomaly.gaussian_operator)."""
  r = max(1, int(round(3.0 * sigma)))
  k = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float64) / sigma) ** 2)
  k = k / k.sum()
  j = np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :]
  period = max(1, 2 * (n - 1))
  j = np.mod(j, period)
  j = np.where(j >= n, period - j, j)
  out = np.zeros((n, n))
  np.add.at(out, (np.repeat(np.arange(n), 2 * r + 1), j.ravel()), np.tile(k, n))
  return out.astype(np.float32)


def localization_map(
  amap: np.ndarray, img: np.ndarray, weight: float, sigma: float, zscore: float = 0.0, background: float = 0.0
) -> np.ndarray:
  """The image map plus weight x the image's darkness, (R - L) (1 / R + zscore / std(L)), L its smoothed luminance,
  R its mean, or L smoothed with `background` where that is > 0."""
  if weight == 0:
    return amap
  lum = gaussian_smooth((img.astype(np.float32) / 255.0 * LUMA).sum(-1), sigma)
  if background > 0:
    ref = gaussian_operator(lum.shape[0], background) @ lum @ gaussian_operator(lum.shape[1], background).T
  else:
    ref = np.full_like(lum, lum.mean(dtype=np.float64))
  spread = max(np.float32(lum.std(dtype=np.float64)), np.float32(1e-3))
  scale = 1 / np.maximum(ref, np.float32(1e-3)) + np.float32(zscore) / spread
  return (amap + np.float32(weight) * (ref - lum) * scale).astype(np.float32)


EXPLAIN_SHARE = 0.005  # a flagged photo with an empty mask shows the connected part of its top 0.5% around its peak
EIGHT = np.ones((3, 3), bool)


def _weak(m: np.ndarray, low: float, border: int) -> np.ndarray:
  weak = m >= low
  if border > 0 and m.shape[0] > 2 * border and m.shape[1] > 2 * border:
    weak[:border], weak[-border:], weak[:, :border], weak[:, -border:] = False, False, False, False
  return weak


def red_mask(loc: np.ndarray, shape: tuple[int, int], d: dict, border: int, flagged: bool) -> np.ndarray:
  """The localization map upsampled (bilinear) to the photo's own `shape`, then the model's decision `d`: the
  8-connected regions >= low holding a pixel >= high whose bounding box's diagonal reaches min_length; none on a
  photo passed as good (unless on_good); a flagged photo with none shows its strongest region (explain)."""
  m = np.asarray(loc, np.float32)
  if m.shape != tuple(shape):
    m = np.asarray(Image.fromarray(m, "F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR))
  if not (flagged or d["on_good"]):
    return np.zeros(m.shape, bool)
  scale = shape[1] / loc.shape[1]
  b = int(round(border * scale))
  lab, n = ndimage.label(_weak(m, d["low"], b), EIGHT)
  keep = np.zeros(n + 1, bool)
  if n:
    peaks = ndimage.maximum(m, lab, np.arange(1, n + 1))
    diag = np.array([np.hypot(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in ndimage.find_objects(lab)])
    keep[1:] = (np.asarray(peaks) >= d["high"]) & (diag >= d["min_length"] * scale)
  hot = keep[lab]
  if flagged and d["explain"] and not hot.any():
    h, w = m.shape
    inner = m[b : h - b, b : w - b] if 0 < b and 2 * b < min(h, w) else m
    off = (h - inner.shape[0]) // 2, (w - inner.shape[1]) // 2
    lab, _ = ndimage.label(_weak(m, np.quantile(inner, 1.0 - EXPLAIN_SHARE), b), EIGHT)
    peak = np.unravel_index(np.argmax(inner), inner.shape)
    hot = lab == lab[peak[0] + off[0], peak[1] + off[1]]
  return hot


class Exported:
  def __init__(self, folder: str):
    with open(os.path.join(folder, "export.json")) as f:
      self.meta = json.load(f)
    if self.meta.get("format") != FORMAT:
      raise ValueError(f"{folder}: export format {self.meta.get('format')!r}, this loader reads {FORMAT!r}")
    with open(os.path.join(folder, "model.stablehlo"), "rb") as f:
      try:
        self.fn = jax_export.deserialize(bytearray(f.read()))
      except Exception as e:  # noqa: BLE001  (a file from another jax version or a damaged one)
        raise ValueError(f"{folder}/model.stablehlo cannot be read by jax {jax.__version__} ({e}); export it again") from None
    self.key = jax.random.fold_in(jax.random.PRNGKey(self.meta["seed"]), self.meta["noise_stream"])

  def map(self, img: np.ndarray, image_id: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] at the working resolution -> anomaly map [H, W]."""
    m = self.meta
    out = np.zeros(img.shape[:2], np.float32)
    for j, (x, dst, src) in enumerate(pieces(img, m["multiple"], m["tile"])):
      ids = np.array([(image_id * 1_000_003 + j) % 2**31], np.int32)
      out[dst] = np.asarray(self.fn.call(x[None], self.key, ids))[0][src]
    return out

  def predict(self, path: str, image_id: int = 0) -> tuple[float, str, np.ndarray, np.ndarray]:
    m = self.meta
    full = read_rgb(path)
    img = resize(full, m["resize"])
    amap = self.map(img, image_id)
    score = image_score(amap, m["pooling"], m["topk_fraction"], m.get("mad_floor", 1e-3), m.get("border", 0))
    w, k, bg = (m.get(f"localization_{f}", 0.0) for f in ("darkness", "zscore", "background"))
    sigma = m.get("localization_sigma", m.get("darkness_sigma", 1.0))  # exports before 994e389 (2026-12-04): darkness_sigma
    loc = localization_map(amap, img, w, sigma, k, bg)
    red = red_mask(loc, full.shape[:2], m["mask"], m.get("border", 0), score >= m["threshold"])
    return score, ("crack" if score >= m["threshold"] else "good"), loc, red


def main(argv: list[str]) -> int:
  if len(argv) < 2:
    print(__doc__.splitlines()[2].strip(), file=sys.stderr)
    return 2
  src = argv[1]
  out = (
    argv[argv.index("--out") + 1]
    if "--out" in argv
    else os.path.join(os.path.dirname(os.path.abspath(__file__)), "predictions.csv")
  )
  model = Exported(os.path.dirname(os.path.abspath(__file__)))
  files = (
    [src]
    if os.path.isfile(src)
    else sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.lower().endswith(EXTENSIONS))
  )
  masks = os.path.join(os.path.dirname(os.path.abspath(out)), "masks")
  os.makedirs(masks, exist_ok=True)
  base = src if os.path.isdir(src) else os.path.dirname(src)
  with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["file", "score", "verdict", "threshold", "red_share", "error"])
    for p in files:
      rel = os.path.relpath(p, base)
      try:
        score, verdict, _, red = model.predict(p, zlib.crc32(rel.encode()) & 0x7FFFFFFF)
        rgba = np.zeros((*red.shape, 4), np.uint8)
        rgba[red] = (255, 0, 0, 255)
        Image.fromarray(rgba, "RGBA").save(os.path.join(masks, rel.replace(os.sep, "__") + ".png"), optimize=True)
        w.writerow([p, repr(score), verdict, f"{model.meta['threshold']:.6g}", f"{red.mean():.6f}", ""])
      except (OSError, ValueError) as e:
        w.writerow([p, "", "", f"{model.meta['threshold']:.6g}", "", str(e)])
  print(f"{len(files)} file(s) -> {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
