"""Procedural concrete, cracks with exact pixel masks, and crack-like distractors (no download).

Concrete: a tinted grey base, value noise at several scales (2 .. 32 px), aggregate (lighter and darker
ellipses), pores (small dark dots), and lighting (a linear gradient and a brightness factor).
Cracks: branching random walks whose heading drifts, drawn with a width that varies along the path; pixels under
the crack are darkened by `depth` (soft edges), and the mask is exactly the drawn stroke.
Distractors in good images: stains (soft dark blobs), water marks (vertical streaks) and shadows (a soft-edged
dark half-plane) - dark like cracks, but wide and smooth, so a detector must learn shape, not darkness.
Everything is drawn from `np.random.default_rng([seed, index])`, so any image is reproducible on its own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class CrackParams:
  width: tuple[float, float] = (1.0, 3.0)  # stroke width range, pixels at 64 px image size
  depth: tuple[float, float] = (0.35, 0.75)  # fraction of brightness removed at the crack centre
  length: tuple[float, float] = (0.5, 1.2)  # path length as a fraction of the image side
  branch_prob: float = 0.04  # chance per step of starting a branch


def _value_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
  n = max(2, size // cell + 2)
  grid = rng.standard_normal((n, n)).astype(np.float32)
  im = Image.fromarray(grid, mode="F").resize((n * cell, n * cell), Image.BICUBIC)
  ox, oy = rng.integers(0, cell, size=2)
  return np.asarray(im)[oy : oy + size, ox : ox + size]


def concrete_texture(rng: np.random.Generator, size: int) -> np.ndarray:
  """float32 [size, size, 3] in [0, 1]."""
  base = rng.uniform(0.42, 0.72)
  tint = rng.uniform(-0.04, 0.04, size=3)
  lum = np.full((size, size), base, np.float32)
  for cell, amp in ((2, 0.035), (4, 0.03), (8, 0.03), (16, 0.035), (32, 0.04)):
    lum += amp * rng.uniform(0.5, 1.5) * _value_noise(rng, size, cell)

  # Aggregate and pores, drawn on a luminance offset layer.
  layer = Image.new("F", (size, size), 0.0)
  draw = ImageDraw.Draw(layer)
  scale = size / 64.0
  for _ in range(int(rng.integers(10, 30) * scale**2)):
    cx, cy = rng.uniform(0, size, 2)
    rx, ry = rng.uniform(0.8, 3.5, 2) * scale
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.09)))
  for _ in range(int(rng.integers(5, 25) * scale**2)):
    cx, cy = rng.uniform(0, size, 2)
    r = rng.uniform(0.4, 1.2) * scale
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=float(-rng.uniform(0.1, 0.25)))
  lum += ndimage.gaussian_filter(np.asarray(layer), 0.6 * scale)

  # Lighting: a gentle gradient in a random direction.
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
  angle = rng.uniform(0, 2 * np.pi)
  lum *= 1.0 + rng.uniform(0.0, 0.25) * (np.cos(angle) * xx + np.sin(angle) * yy)
  rgb = lum[..., None] * (1.0 + tint[None, None, :])
  rgb += 0.012 * rng.standard_normal((size, size, 3))
  return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _walk(rng, start, heading, n_steps, width, size, paths, depth_left=2, params=None):
  pts = [start]
  widths = [width]
  x, y = start
  for _ in range(n_steps):
    heading += rng.normal(0.0, 0.15)
    x, y = x + np.cos(heading), y + np.sin(heading)
    width = float(np.clip(width + rng.normal(0.0, 0.12), params.width[0] * 0.6, params.width[1] * size / 64.0))
    pts.append((x, y))
    widths.append(width)
    if depth_left > 0 and rng.random() < params.branch_prob:
      branch_heading = heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
      _walk(rng, (x, y), branch_heading, int(n_steps * rng.uniform(0.2, 0.5)), width * 0.7, size, paths, depth_left - 1, params)
    if not (-4 <= x <= size + 4 and -4 <= y <= size + 4):
      break
  paths.append((pts, widths))


def draw_crack(rng: np.random.Generator, img: np.ndarray, params: CrackParams = CrackParams()):
  """Darkens img (float [S, S, 3] in [0, 1]) along a branching crack. Returns (image, mask uint8 [S, S])."""
  size = img.shape[0]
  scale = size / 64.0
  paths: list = []
  start = tuple(rng.uniform(0.15 * size, 0.85 * size, 2))
  n_steps = int(rng.uniform(*params.length) * size)
  width = rng.uniform(*params.width) * scale
  _walk(rng, start, rng.uniform(0, 2 * np.pi), n_steps, width, size, paths, params=params)

  mask_im = Image.new("L", (size, size), 0)
  draw = ImageDraw.Draw(mask_im)
  for pts, widths in paths:
    for p, q, w in zip(pts[:-1], pts[1:], widths[1:]):
      draw.line([p, q], fill=255, width=max(1, int(round(w))))
      r = w / 2.0
      if r >= 1.0:  # round joints so wide strokes have no gaps
        draw.ellipse([q[0] - r, q[1] - r, q[0] + r, q[1] + r], fill=255)
  mask = (np.asarray(mask_im) > 127).astype(np.uint8)
  soft = ndimage.gaussian_filter(mask.astype(np.float32), 0.5 * scale)
  soft = np.maximum(soft, mask.astype(np.float32))
  depth = rng.uniform(*params.depth)
  out = img * (1.0 - depth * soft[..., None])
  return np.clip(out, 0.0, 1.0), mask


DISTRACTORS = ("stain", "water_mark", "shadow")


def draw_distractor(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
  """One stain, water mark or shadow: dark, smooth and wide (never crack-thin)."""
  return _distractor(rng, img)[0]


def _distractor(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, str]:
  size = img.shape[0]
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  kind = rng.integers(3)
  if kind == 0:  # stain: a soft blob of irregular outline
    cx, cy = rng.uniform(0, size, 2)
    r = rng.uniform(0.12, 0.35) * size
    wobble = 1.0 + 0.3 * _value_noise(rng, size, max(4, size // 4))
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / (r * wobble)
    alpha = np.clip(1.0 - d, 0.0, 1.0) ** 0.7 * rng.uniform(0.15, 0.35)
  elif kind == 1:  # water mark: a vertical streak, fading downwards, softly edged
    cx = rng.uniform(0, size)
    w = rng.uniform(0.08, 0.2) * size
    x_off = cx + 0.05 * size * np.sin(yy / size * rng.uniform(2, 6))
    across = np.exp(-0.5 * ((xx - x_off) / (w / 2)) ** 2)
    top = rng.uniform(-0.2, 0.5) * size
    along = np.clip((yy - top) / (0.3 * size), 0.0, 1.0)
    alpha = across * along * rng.uniform(0.15, 0.3)
  else:  # shadow: a dark half-plane with a soft edge
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.3, 0.3) * size
    dist = (xx - size / 2) * np.cos(angle) + (yy - size / 2) * np.sin(angle) - offset
    alpha = 1.0 / (1.0 + np.exp(-dist / rng.uniform(0.03, 0.08) / size)) * rng.uniform(0.2, 0.4)
  return np.clip(img * (1.0 - alpha[..., None]), 0.0, 1.0), DISTRACTORS[kind]


def generate(seed: int, index: int, size: int, *, crack: bool, distractor_prob: float = 0.5):
  """One image: (uint8 [size, size, 3], mask uint8 {0,1} [size, size]). Deterministic in (seed, index)."""
  img, mask, _ = generate_with_distractor(seed, index, size, crack=crack, distractor_prob=distractor_prob)
  return img, mask


def generate_with_distractor(seed: int, index: int, size: int, *, crack: bool, distractor_prob: float = 0.5):
  """generate(), and which distractor the image carries ('' = none, else one of DISTRACTORS)."""
  rng = np.random.default_rng([seed, index])
  img = concrete_texture(rng, size)
  kind = ""
  if rng.random() < distractor_prob:
    img, kind = _distractor(rng, img)
  mask = np.zeros((size, size), np.uint8)
  if crack:
    img, mask = draw_crack(rng, img)
  return (img * 255.0 + 0.5).astype(np.uint8), mask, kind
