"""Synthetic anomalies with exact masks, and distractors that must stay normal (host side, NumPy and PIL).

Shared by the built-in synthetic concrete (crackjax/data/synthetic.py), the red mask's calibration
(crackjax/calibration.py), the student's synthetic cracks and the DRAEM baseline. Every function takes a float image
[H, W, 3] in [0, 1] and a NumPy Generator and returns a new image (and a uint8 {0, 1} mask [H, W] where the
change is an anomaly); the same generator state gives the same picture.

Cracks, written from what cracks look like in general (not fitted to any test image):
- `draw_crack`: the synthetic data set's original model, a branching random walk of 1-3 px (at 64 px).
- `draw_fine_crack`: the calibration's model. A branching walk whose heading drifts and kinks, rendered at 4x and
  area-averaged (a 0.4 px hairline becomes a faint 1 px line, as a thin crack does in a photo), with a width
  that varies along the path (log-uniform from hairline to wide), darkening relative to the local surface by a
  depth from faint to near-black with soft edges; a share are gaps wider than a training crop with spalled
  (chipped, irregular) edges. The mask is every pixel at least a quarter covered (the rule `pipeline.resize_mask`
  uses for real masks). `persistent=True` keeps the walk's course across a photo-sized image (a local wiggle about
  a slowly bending course), where the drifting walk, sized for 32 px crops, curls into loops.
Texture anomalies (DRAEM, TransFusion): a Perlin-noise mask M, the image's own texture shuffled in 8x8 blocks as
A, blended as I (1 - M) + (1 - b) A M + b I M with b in [0, 0.8).
Distractors that must stay normal: stains, water marks and shadows (wide, smooth, dark), and straight joints (a
formwork joint, saw cut or tile edge: `draw_straight_joint`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

# -------------------------------------------------------------------------------- the original synthetic crack


@dataclasses.dataclass(frozen=True)
class CrackParams:
  width: tuple[float, float] = (1.0, 3.0)  # stroke width range, pixels at 64 px image size
  depth: tuple[float, float] = (0.35, 0.75)  # fraction of brightness removed at the crack centre
  length: tuple[float, float] = (0.5, 1.2)  # path length as a fraction of the image side
  branch_prob: float = 0.04  # chance per step of starting a branch


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


# ----------------------------------------------------------------------------------- the calibration's crack model

SUPERSAMPLE = 4  # cracks are drawn at 4x and area-averaged: sub-pixel hairlines keep their faintness
MASK_COVERAGE = 0.25  # a pixel is crack when at least this share of it is covered


def _fine_walk(rng, start, heading, length, width, paths, depth_left, persistent=False):
  """A crack path: heading drifts slowly and kinks now and then; width wanders and tapers at the tip.

  persistent=True: the heading wiggles about a course instead of wandering off (a mean-reverting deviation with a
  correlation length of 6 + 2 x width pixels, about 0.3 rad; the course itself bends by about 0.01 rad per pixel
  and kinks now and then), so a crack keeps its direction across a photo of any size, as a crack following the
  surface's stress does, where the drifting walk (built for 32 px crops) curls into loops at 200 px.
  """
  pts, widths = [start], [width]
  x, y = start
  drift = rng.normal(0.0, 0.02)
  course, dev, keep = heading, 0.0, 1.0 - 1.0 / (6.0 + 2.0 * width)
  n = max(2, int(length))
  for i in range(n):
    if persistent:
      course += rng.normal(0.0, 0.01) + (rng.normal(0.0, 0.4) if rng.random() < 0.01 else 0.0)
      dev = keep * dev + rng.normal(0.0, 0.3 * np.sqrt(1.0 - keep**2))
      heading = course + dev
    else:
      heading += drift + rng.normal(0.0, 0.12) + (rng.normal(0.0, 0.7) if rng.random() < 0.04 else 0.0)
    x, y = x + np.cos(heading), y + np.sin(heading)
    taper = min(1.0, (n - i) / max(4.0, 0.15 * n))  # thins towards the tip
    w = width * np.exp(rng.normal(0.0, 0.08)) * (0.35 + 0.65 * taper)
    width = width * np.exp(rng.normal(0.0, 0.05))
    pts.append((x, y))
    widths.append(w)
    if depth_left > 0 and rng.random() < 0.012:
      b_heading = heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.2)
      b_length, b_width = length * rng.uniform(0.15, 0.5), width * rng.uniform(0.3, 0.7)
      _fine_walk(rng, (x, y), b_heading, b_length, b_width, paths, depth_left - 1, persistent)
  paths.append((pts, widths))


def _render(paths, h: int, w: int, s: int, spall: float, rng) -> np.ndarray:
  """Coverage in [0, 1] at [h, w] of the paths drawn at s-times resolution (area average)."""
  im = Image.new("L", (w * s, h * s), 0)
  draw = ImageDraw.Draw(im)
  for pts, widths in paths:
    for p, q, width in zip(pts[:-1], pts[1:], widths[1:]):
      ws = width * s
      draw.line([(p[0] * s, p[1] * s), (q[0] * s, q[1] * s)], fill=255, width=max(1, int(round(ws))))
      r = ws / 2.0
      if r >= 1.0:
        draw.ellipse([q[0] * s - r, q[1] * s - r, q[0] * s + r, q[1] * s + r], fill=255)
      if spall > 0 and rng.random() < spall:  # a chip broken off the edge
        a = rng.uniform(0, 2 * np.pi)
        c = (q[0] * s + np.cos(a) * r, q[1] * s + np.sin(a) * r)
        rr = rng.uniform(0.2, 0.6) * r
        draw.ellipse([c[0] - rr, c[1] - rr, c[0] + rr, c[1] + rr], fill=255)
  a = np.asarray(im, np.float32) / 255.0
  return a.reshape(h, s, w, s).mean(axis=(1, 3))


def draw_fine_crack(
  rng: np.random.Generator,
  img: np.ndarray,
  *,
  width: tuple[float, float] = (0.4, 12.0),
  depth: tuple[float, float] = (0.15, 0.9),
  p_gap: float = 0.0,
  p_relief: float = 0.5,
  persistent: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """One crack of the fine model (module docstring) on img [H, W, 3] in [0, 1]. Returns (image, mask).

  With probability p_relief one lip of the crack catches raking light: a line up to 35% brighter right beside it.
  persistent: the walk keeps its course across the whole image (`_fine_walk`), for photo-sized images.
  """
  h, w = img.shape[:2]
  side = max(h, w)
  gap = rng.random() < p_gap
  if gap:  # wider than the crop: the crop is mostly inside the gap, with a spalled edge or two in view
    w0 = rng.uniform(0.6, 1.5) * min(h, w)
    d = rng.uniform(0.5, 0.9)
  else:
    w0 = float(np.exp(rng.uniform(np.log(width[0]), np.log(width[1]))))
    # Faint cracks are mostly thin ones; wide cracks are deep shadows.
    lo = depth[0] + (depth[1] - depth[0]) * min(1.0, w0 / 8.0) * 0.5
    d = rng.uniform(lo, depth[1])
  # Start on the border or inside, heading across the crop, so most cracks cross it.
  if rng.random() < 0.7:
    edge = rng.integers(4)
    t = rng.uniform(0, 1)
    start = [(t * w, -2.0), (w + 2.0, t * h), (t * w, h + 2.0), (-2.0, t * h)][edge]
    heading = [np.pi / 2, np.pi, -np.pi / 2, 0.0][edge] + rng.normal(0, 0.5)
  else:
    start = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
    heading = rng.uniform(0, 2 * np.pi)
  paths: list = []
  length = rng.uniform(0.6, 1.6) * side + (w0 if gap else 0)
  _fine_walk(rng, start, heading, length, w0, paths, depth_left=2, persistent=persistent)
  cover = _render(paths, h, w, SUPERSAMPLE, spall=0.3 if (gap or w0 > 4) else 0.0, rng=rng)
  mask = (cover >= MASK_COVERAGE).astype(np.uint8)
  soft = np.maximum(cover, ndimage.gaussian_filter(cover, rng.uniform(0.3, 0.9)))
  # The inside of a crack is a shadow: darker at its core, with some texture of its own.
  shade = d * (0.85 + 0.3 * rng.random((h, w)).astype(np.float32))
  if gap or w0 > 3:
    core = ndimage.distance_transform_edt(cover > 0.5)
    shade = shade * (0.7 + 0.3 * np.clip(core / max(1.0, w0 / 4), 0, 1))
  out = img * (1.0 - np.clip(shade * soft, 0, 0.97)[..., None])
  if rng.random() < p_relief:  # relief under raking light: one lip of the crack catches the light, a bright line beside it
    a = rng.uniform(0, 2 * np.pi)
    shift = (0.6 + 0.4 * min(w0, 4.0)) * np.array([np.sin(a), np.cos(a)])
    lip = np.clip(ndimage.shift(soft, shift, order=1, mode="constant") - soft, 0, 1)
    out = out * (1.0 + rng.uniform(0.05, 0.35) * lip[..., None])
  return np.clip(out, 0.0, 1.0).astype(np.float32), mask


# --------------------------------------------------------------------------------------- texture anomalies


def perlin(rng: np.random.Generator, h: int, w: int, res: tuple[int, int]) -> np.ndarray:
  """2-D Perlin gradient noise [h, w], about in [-1, 1], with res[0] x res[1] lattice cells over the image."""
  ry, rx = res
  angles = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
  grad = np.stack([np.cos(angles), np.sin(angles)], -1)
  y = np.linspace(0, ry, h, endpoint=False)
  x = np.linspace(0, rx, w, endpoint=False)
  yy, xx = np.meshgrid(y, x, indexing="ij")
  y0, x0 = yy.astype(int), xx.astype(int)
  fy, fx = yy - y0, xx - x0

  def dot(dy, dx):
    g = grad[y0 + dy, x0 + dx]
    return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

  fade = lambda t: 6 * t**5 - 15 * t**4 + 10 * t**3  # noqa: E731
  uy, ux = fade(fy), fade(fx)
  top = dot(0, 0) * (1 - ux) + dot(0, 1) * ux
  bottom = dot(1, 0) * (1 - ux) + dot(1, 1) * ux
  return (np.sqrt(2) * (top * (1 - uy) + bottom * uy)).astype(np.float32)


def perlin_mask(rng: np.random.Generator, h: int, w: int, threshold: float = 0.5) -> np.ndarray:
  """DRAEM's anomaly shape: Perlin noise of a random lattice scale (2^0 .. 2^3 cells) above `threshold`."""
  res = (2 ** int(rng.integers(0, 4)), 2 ** int(rng.integers(0, 4)))
  return (perlin(rng, h, w, res) > threshold).astype(np.uint8)


def shuffled_texture(rng: np.random.Generator, img: np.ndarray, block: int = 8) -> np.ndarray:
  """TransFusion's anomaly source: the image's own blocks (block x block) in a random order."""
  h, w = img.shape[:2]
  hb, wb = -(-h // block), -(-w // block)
  pad = np.pad(img, ((0, hb * block - h), (0, wb * block - w), (0, 0)), mode="reflect")
  tiles = pad.reshape(hb, block, wb, block, -1).transpose(0, 2, 1, 3, 4).reshape(hb * wb, block, block, -1)
  tiles = tiles[rng.permutation(len(tiles))]
  out = tiles.reshape(hb, wb, block, block, -1).transpose(0, 2, 1, 3, 4).reshape(hb * block, wb * block, -1)
  return out[:h, :w]


def texture_anomaly(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """I (1 - M) + (1 - b) A M + b I M with a Perlin mask M, A the self-shuffled texture, b in [0, 0.8)."""
  h, w = img.shape[:2]
  for _ in range(8):  # an empty mask is no anomaly: draw again (rarely needed)
    m = perlin_mask(rng, h, w)
    if m.any():
      break
  a = shuffled_texture(rng, img) * rng.uniform(0.7, 1.3, 3)[None, None, :]  # and a colour jitter
  return np.clip(blend(img, a, m, rng.uniform(0.0, 0.8)), 0, 1).astype(np.float32), m


def blend(img: np.ndarray, a: np.ndarray, m: np.ndarray, b: float) -> np.ndarray:
  """DRAEM's blend: I (1 - M) + (1 - b) A M + b I M."""
  mf = m[..., None].astype(np.float32)
  return img * (1 - mf) + (1 - b) * a * mf + b * img * mf


# ------------------------------------------------------------------------------------------- hard negatives

DISTRACTORS = ("stain", "water_mark", "shadow")  # the synthetic data set's (replayed by crackjax.failures)


def draw_distractor(rng: np.random.Generator, img: np.ndarray, strength: float = 1.0) -> tuple[np.ndarray, str]:
  """One stain, water mark or shadow: dark, smooth and wide (never crack-thin). Returns (image, kind). `strength`
  scales the darkening (1: the synthetic data set's)."""
  h, w = img.shape[:2]
  size = max(h, w)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  kind = rng.integers(3)
  if kind == 0:  # stain: a soft blob of irregular outline
    cx, cy = rng.uniform(0, size, 2)
    r = rng.uniform(0.12, 0.35) * size
    wobble = 1.0 + 0.3 * _value_noise(rng, size, max(4, size // 4))[:h, :w]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / (r * wobble)
    alpha = np.clip(1.0 - d, 0.0, 1.0) ** 0.7 * rng.uniform(0.15, 0.35) * strength
  elif kind == 1:  # water mark: a vertical streak, fading downwards, softly edged
    cx = rng.uniform(0, size)
    sw = rng.uniform(0.08, 0.2) * size
    x_off = cx + 0.05 * size * np.sin(yy / size * rng.uniform(2, 6))
    across = np.exp(-0.5 * ((xx - x_off) / (sw / 2)) ** 2)
    top = rng.uniform(-0.2, 0.5) * size
    along = np.clip((yy - top) / (0.3 * size), 0.0, 1.0)
    alpha = across * along * rng.uniform(0.15, 0.3) * strength
  else:  # shadow: a dark half-plane with a soft edge
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(-0.3, 0.3) * size
    dist = (xx - size / 2) * np.cos(angle) + (yy - size / 2) * np.sin(angle) - offset
    alpha = 1.0 / (1.0 + np.exp(-dist / rng.uniform(0.03, 0.08) / size)) * rng.uniform(0.2, 0.4) * strength
  return np.clip(img * (1.0 - alpha[..., None]), 0.0, 1.0), DISTRACTORS[kind]


def _value_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
  n = max(2, size // cell + 2)
  grid = rng.standard_normal((n, n)).astype(np.float32)
  im = Image.fromarray(grid, mode="F").resize((n * cell, n * cell), Image.BICUBIC)
  ox, oy = rng.integers(0, cell, size=2)
  return np.asarray(im)[oy : oy + size, ox : ox + size]


# ----------------------------------------------------------------------------------- joints that are not cracks


def draw_straight_joint(rng: np.random.Generator, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """A formwork joint, saw cut or tile edge: a straight dark groove across the whole image (most near horizontal or
  vertical), 1.5-4 px wide, darkening 25-55%, with a small brightness step between its two sides. Returns (image,
  mask of the groove): what a model that learnt a jointed surface should leave white."""
  h, w = img.shape[:2]
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.03) if rng.random() < 0.7 else rng.uniform(0, np.pi)
  cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
  dist = (xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle)  # signed distance to the line, pixels
  half = rng.uniform(1.5, 4.0) / 2
  groove = np.clip(half + 0.5 - np.abs(dist), 0.0, 1.0)  # anti-aliased: 1 inside, a 1 px ramp at its edges
  side = 1.0 + rng.uniform(-0.08, 0.08) * (dist > 0)
  out = img * side[..., None] * (1.0 - rng.uniform(0.25, 0.55) * groove[..., None])
  return np.clip(out, 0.0, 1.0).astype(np.float32), (np.abs(dist) <= half + 0.5).astype(np.uint8)
