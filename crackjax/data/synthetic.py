"""The built-in synthetic concrete data set: procedural concrete with cracks and distractors (no download).

Concrete: a tinted grey base, value noise at several scales (2 .. 32 px), aggregate (lighter and darker
ellipses), pores (small dark dots), and lighting (a linear gradient and a brightness factor).
Cracks and distractors come from crackjax/synth.py (one place for every synthetic anomaly):
- default: cracks of `synth.draw_crack` (1-3 px, clearly dark); good images may carry a stain, water mark or
  shadow - dark like cracks, but wide and smooth, so a detector must learn shape, not darkness;
Everything is drawn from `np.random.default_rng([seed, index])`, so any image is reproducible on its own.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from crackjax import synth
from crackjax.synth import _value_noise


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


def generate(seed: int, index: int, size: int, *, crack: bool, distractor_prob: float = 0.5):
  """One image: (uint8 [size, size, 3], mask uint8 {0,1} [size, size]). Deterministic in (seed, index)."""
  img, mask, _ = generate_with_distractor(seed, index, size, crack=crack, distractor_prob=distractor_prob)
  return img, mask


def generate_with_distractor(seed: int, index: int, size: int, *, crack: bool, distractor_prob: float = 0.5):
  """generate(), and which distractor the image carries ('' = none, else one of synth.DISTRACTORS)."""
  rng = np.random.default_rng([seed, index])
  img = concrete_texture(rng, size)
  kind = ""
  if rng.random() < distractor_prob:
    img, kind = synth.draw_distractor(rng, img)
  mask = np.zeros((size, size), np.uint8)
  if crack:
    img, mask = synth.draw_crack(rng, img)
  return (img * 255.0 + 0.5).astype(np.uint8), mask, kind
