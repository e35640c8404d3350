"""Synthetic anomalies (crackjax/synth.py: DRAEM's training, the red mask's calibration, the threshold of a
sound-only val, the joints check): known answers for the generators, and DRAEM's focal loss."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from crackjax import synth
from crackjax.baselines import draem


def _surface(h=48, w=40, level=0.6):
  return np.full((h, w, 3), level, np.float32)


@pytest.mark.parametrize("width", [0.4, 1.0, 3.0, 10.0])
def test_fine_cracks_darken_only_under_their_mask_and_their_width_shows(width):
  rng = np.random.default_rng(0)
  out, mask = synth.draw_fine_crack(rng, _surface(), width=(width, width), depth=(0.6, 0.6), p_relief=0.0)
  assert out.shape == (48, 40, 3) and (out <= 0.6 + 1e-6).all()
  assert mask.any() and (out[mask > 0].mean() < 0.6 - 0.05)
  far = np.ones_like(mask, bool)
  far[np.nonzero(np.maximum.reduce([np.roll(mask, s, a) for s in range(-4, 5) for a in (0, 1)]))] = False
  # Away from the mask only pixels less than a quarter covered (a hairline's tapering tip) darken, and faintly:
  # at most depth x shade x coverage x surface = 0.6 x 1.15 x 0.25 x 0.6.
  assert (0.6 - out[far]).max() <= 0.6 * 1.15 * synth.MASK_COVERAGE * 0.6 + 1e-6
  if width >= 3:  # the mask's area grows with the width (hairlines cover under a quarter of most pixels)
    assert mask.mean() > 0.05


def test_a_cracks_relief_is_a_bright_line_only_beside_it():
  for seed in range(6):
    out, mask = synth.draw_fine_crack(np.random.default_rng(seed), _surface(), width=(3, 3), depth=(0.6, 0.6), p_relief=1.0)
    lum = out.mean(-1)
    dist = ndimage.distance_transform_edt(lum >= 0.6 - 1e-4)  # pixels from the darkened crack
    assert mask.any() and (dist[lum > 0.6 + 1e-3] <= 4).all()  # the lip lies beside the crack, nowhere else
    assert out.max() > 0.6 + 0.01 and out.max() <= 0.6 * 1.35 + 1e-6  # the lip: brighter, by at most 35%


def test_a_subpixel_hairline_is_faint_and_a_wide_crack_dark():
  thin, _ = synth.draw_fine_crack(np.random.default_rng(1), _surface(), width=(0.4, 0.4), depth=(0.6, 0.6))
  wide, _ = synth.draw_fine_crack(np.random.default_rng(1), _surface(), width=(6, 6), depth=(0.6, 0.6))
  assert 0.6 - thin.min() < 0.5 * (0.6 - wide.min())


def test_the_persistent_crack_walk_keeps_its_course_across_a_photo():
  """Over 300 px the straight distance from start to end is at least 0.8 of the persistent walk's length on every
  one of 20 seeds (a crack crosses the surface); the drifting walk, built for 32 px crops, curls (median < 0.6)."""

  def straightness(persistent):
    out = []
    for seed in range(20):
      paths = []
      synth._fine_walk(np.random.default_rng(seed), (0.0, 0.0), 0.0, 300, 2.0, paths, 0, persistent)
      pts = np.array(paths[-1][0])
      out.append(np.linalg.norm(pts[-1] - pts[0]) / (len(pts) - 1))
    return np.array(out)

  assert straightness(True).min() > 0.8
  assert np.median(straightness(False)) < 0.6


def test_a_straight_joint_is_a_straight_dark_groove_under_its_mask():
  """The joint's mask is a straight band across the image (a line fitted to its pixels leaves under 1 px of
  residual), its pixels darker than the surface by 25-55% at the groove's centre and at most 8% changed elsewhere."""
  for seed in range(10):
    out, mask = synth.draw_straight_joint(np.random.default_rng(seed), _surface(64, 80))
    ys, xs = np.nonzero(mask)
    assert mask.mean() < 0.15 and len(ys) > 40
    pts = np.c_[xs, ys].astype(float)
    pts -= pts.mean(0)
    assert np.linalg.svd(pts, compute_uv=False)[1] / np.sqrt(len(pts)) < 1.5  # thin across, long along
    lum = out.mean(-1)
    assert lum[mask > 0].min() <= 0.6 * 1.08 * 0.75 + 1e-6 and lum[mask > 0].min() >= 0.6 * 0.92 * 0.45 - 1e-6
    assert np.abs(lum[mask == 0] - 0.6).max() <= 0.6 * 0.08 + 1e-6


def test_perlin_masks_cover_half_the_image_at_threshold_zero_on_average():
  """Perlin noise is symmetric about 0: P(noise > 0) = 1/2, so masks at threshold 0 cover half the image on
  average; DRAEM's threshold 0.5 covers less."""
  rng = np.random.default_rng(3)
  cover0 = np.mean([(synth.perlin(rng, 32, 32, (4, 4)) > 0).mean() for _ in range(300)])
  assert cover0 == pytest.approx(0.5, abs=0.03)
  cover5 = np.mean([synth.perlin_mask(rng, 32, 32).mean() for _ in range(300)])
  assert 0.02 < cover5 < 0.3


def test_shuffled_texture_is_a_permutation_of_the_images_own_blocks():
  img = np.random.default_rng(4).random((32, 24, 3)).astype(np.float32)
  out = synth.shuffled_texture(np.random.default_rng(4), img, block=8)

  def blocks(a):
    return sorted(a[i : i + 8, j : j + 8].tobytes() for i in range(0, 32, 8) for j in range(0, 24, 8))

  assert blocks(out) == blocks(img) and not np.array_equal(out, img)


def test_draem_blend_known_answer():
  img, a = _surface(4, 4, 0.6), _surface(4, 4, 0.2)
  m = np.zeros((4, 4), np.uint8)
  m[1:3, 1:3] = 1
  out = synth.blend(img, a, m, 0.25)
  np.testing.assert_allclose(out[0, 0], 0.6)
  np.testing.assert_allclose(out[1, 1], 0.75 * 0.2 + 0.25 * 0.6)


def test_focal_loss_known_answers():
  logits, target = jnp.zeros((1, 4, 4)), jnp.ones((1, 4, 4))
  np.testing.assert_allclose(draem.focal_loss(logits, target, 0.0), np.log(2), rtol=1e-6)
  np.testing.assert_allclose(draem.focal_loss(logits, target, 2.0), 0.25 * np.log(2), rtol=1e-6)
  confident = jnp.full((1, 4, 4), 6.0)
  assert float(draem.focal_loss(confident, target, 2.0)) < 1e-4 * float(draem.focal_loss(confident, target, 0.0))
