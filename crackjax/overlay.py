"""Predict's per-photo figure, composed with NumPy and PIL (no matplotlib: a figure costs about what scoring does).

One PNG per photo, at display size: the photo | the heatmap over it | the red mask over it, a caption line
(file, verdict, score, cracks), and under the heatmap a colour bar with the mask's two thresholds marked. The
heatmap's scale is the model's (mask.Decision.colour_max), so the same colour is the same evidence in every photo.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

RED = np.array([255, 0, 0], np.float32)
GAP, CAPTION, BAR = 6, 16, 10  # pixels


def jet(v: np.ndarray) -> np.ndarray:
  """[...] in [0, 1] -> uint8 [..., 3], the jet colour map (piecewise linear: blue, cyan, yellow, red)."""
  v = np.clip(np.asarray(v, np.float32), 0.0, 1.0)[..., None]
  rgb = np.clip(1.5 - np.abs(4.0 * v - np.array([3.0, 2.0, 1.0], np.float32)), 0.0, 1.0)
  return (rgb * 255.0 + 0.5).astype(np.uint8)


def heat(image: np.ndarray, m: np.ndarray, vmax: float) -> np.ndarray:
  """uint8 [H, W, 3]: the map's colours (0 .. vmax) blended over the photo."""
  return (0.55 * image + 0.45 * jet(np.asarray(m) / max(vmax, 1e-12))).astype(np.uint8)


def red(image: np.ndarray, hot: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3]: the photo with the red mask's pixels painted red (70%)."""
  out = image.astype(np.float32)
  out[hot] = 0.3 * out[hot] + 0.7 * RED
  return out.astype(np.uint8)


def colour_bar(width: int, vmax: float, marks: dict[str, float]) -> Image.Image:
  """A horizontal bar 0 .. vmax with a white tick and a label at each mark."""
  bar = np.repeat(jet(np.linspace(0, 1, width))[None], BAR, 0)
  im = Image.new("RGB", (width, BAR + CAPTION), (255, 255, 255))
  im.paste(Image.fromarray(bar), (0, 0))
  d = ImageDraw.Draw(im)
  for label, v in marks.items():
    x = int(round(np.clip(v / max(vmax, 1e-12), 0, 1) * (width - 1)))
    d.line([(x, 0), (x, BAR)], fill=(255, 255, 255), width=2)
    d.line([(x, BAR), (x, BAR + 3)], fill=(0, 0, 0), width=1)
    d.text((min(max(x - 3 * len(label), 0), max(width - 6 * len(label), 0)), BAR + 3), label, fill=(0, 0, 0))
  return im


def compose(image: np.ndarray, m: np.ndarray, hot: np.ndarray, vmax: float, marks: dict[str, float], caption: str) -> Image.Image:
  """image uint8 [H, W, 3], map [H, W], red mask bool [H, W] (all at display size) -> the figure."""
  h, w = image.shape[:2]
  panels = [image, heat(image, m, vmax), red(image, hot)]
  out = Image.new("RGB", (3 * w + 2 * GAP, CAPTION + h + BAR + CAPTION), (255, 255, 255))
  ImageDraw.Draw(out).text((2, 2), caption, fill=(0, 0, 0))
  for k, p in enumerate(panels):
    out.paste(Image.fromarray(p), (k * (w + GAP), CAPTION))
  out.paste(colour_bar(w, vmax, marks), (w + GAP, CAPTION + h))
  return out
