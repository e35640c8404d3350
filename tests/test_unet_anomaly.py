import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from crackjax import anomaly
from crackjax import schedule as sch
from crackjax.unet import UNet, UNetConfig, upsample_nearest
from tests.test_samplers import SCHED, gaussian_denoiser


def test_unet_is_fully_convolutional(key):
  model = UNet(UNetConfig(channels=8, channel_mult=(1, 2), num_groups=4))
  params = model.init(key, jnp.zeros((1, 16, 16, 3)), jnp.zeros((1,), jnp.int32))
  out = model.apply(params, jnp.ones((2, 24, 40, 3)), jnp.array([3, 500]))
  assert out.shape == (2, 24, 40, 3)
  with pytest.raises(ValueError, match="divisible by 2"):
    model.apply(params, jnp.ones((1, 15, 16, 3)), jnp.array([1]))


@pytest.mark.parametrize("factor", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 5, 4)])
def test_upsample_matches_nearest_resize(key, factor, shape):
  x = jax.random.normal(key, shape)
  np.testing.assert_array_equal(upsample_nearest(x, factor), jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2))


@pytest.mark.parametrize("sigma", [0.7, 2.0, 3.0])
def test_gaussian_smoothing_equals_scipy_with_the_same_truncation(key, sigma):
  """Known answer: scipy.ndimage.gaussian_filter, radius round(3 sigma), mirrored borders ('mirror' = jnp 'reflect')."""
  m = np.asarray(jax.random.uniform(key, (2, 23, 31)))
  radius = max(1, int(round(3.0 * sigma)))
  want = np.stack([ndimage.gaussian_filter(a, sigma, truncate=radius / sigma, mode="mirror") for a in m])
  np.testing.assert_allclose(anomaly.gaussian_smooth(jnp.asarray(m), sigma), want, atol=1e-5)


def test_residuals_and_pooling():
  x0 = jnp.zeros((1, 2, 2, 3))
  x_hat = jnp.array([0.5, -0.5, 0.0, 0.2]).reshape(1, 2, 2, 1) * jnp.ones((1, 1, 1, 3))
  np.testing.assert_allclose(anomaly.residual_map(x0, x_hat).ravel(), [0.5, 0.5, 0, 0.2])
  m = np.arange(100.0).reshape(10, 10)
  assert anomaly.image_score(m, pooling="max", topk_fraction=0.1) == 99
  assert anomaly.image_score(m, pooling="topk", topk_fraction=0.05) == np.mean([95, 96, 97, 98, 99])


def test_luma_residual_ignores_hue_and_median_pooling_discounts_texture():
  x0 = jnp.zeros((1, 1, 2, 3))
  # Pixel 0: a pure hue shift at constant luminance; pixel 1: a brightness change.
  hue = jnp.array([0.587, -0.299, 0.0])
  x_hat = jnp.stack([hue, jnp.full(3, 0.5)]).reshape(1, 1, 2, 3)
  luma = anomaly.residual_map(x0, x_hat, "luma").ravel()
  np.testing.assert_allclose(luma, [0.0, 0.5], atol=1e-6)
  assert float(anomaly.residual_map(x0, x_hat, "mean")[0, 0, 0]) > 0.2
  with pytest.raises(ValueError, match="anomaly.channels"):
    anomaly.residual_map(x0, x_hat, "lab")
  # Same crack on a smooth and on a rough texture: plain top-k rises with roughness, top-k minus median does not.
  smooth = np.zeros((10, 10))
  smooth[4, :] = 1.0
  rough = smooth + 0.3
  topk = [anomaly.image_score(m, pooling="topk", topk_fraction=0.1) for m in (smooth, rough)]
  np.testing.assert_allclose(topk, [1.0, 1.3], atol=1e-6)
  med = [anomaly.image_score(m, pooling="topk_minus_median", topk_fraction=0.1) for m in (smooth, rough)]
  np.testing.assert_allclose(med, [1.0, 1.0], atol=1e-6)


def test_topk_mad_is_a_robust_z_score():
  """(top-k mean - median) / (MAD + floor): a faint line on a quiet map scores as high as a strong line on a busy
  one whose noise is proportionally larger; the floor keeps a flat map finite."""
  rng = np.random.default_rng(0)
  noise = np.abs(rng.normal(size=(20, 20))).astype(np.float32)
  faint = (0.01 * noise).copy()
  faint[10, :] += 0.1
  strong = 10 * faint
  z = [anomaly.image_score(m, pooling="topk_mad", topk_fraction=0.05) for m in (faint, strong)]
  for i, x in enumerate((faint, strong)):
    f = np.sort(x.ravel())[::-1]
    med = np.median(f)
    expected = (f[:20].mean() - med) / (np.median(np.abs(f - med)) + anomaly.MAD_FLOOR)
    np.testing.assert_allclose(z[i], expected, rtol=1e-5)
  assert z[0] > 0.8 * z[1]  # scale-free up to the floor, while plain top-k differs tenfold
  assert anomaly.image_score(np.zeros((8, 8)), pooling="topk_mad", topk_fraction=0.1) == 0.0
  # anomaly.mad_floor F: (top - med) / (MAD + F); a floor far above every MAD turns it into topk_minus_median / F.
  f = np.sort(strong.ravel())[::-1]
  med = np.median(f)
  for floor in (0.05, 1e4):
    z = anomaly.image_score(strong, pooling="topk_mad", topk_fraction=0.05, mad_floor=floor)
    np.testing.assert_allclose(z, (f[:20].mean() - med) / (np.median(np.abs(f - med)) + floor), rtol=1e-5)
  tmm = anomaly.image_score(strong, pooling="topk_minus_median", topk_fraction=0.05)
  big = anomaly.image_score(strong, pooling="topk_mad", topk_fraction=0.05, mad_floor=1e4)
  np.testing.assert_allclose(1e4 * big, tmm, rtol=1e-3)


@pytest.mark.parametrize("pooling", anomaly.POOLINGS)
def test_the_border_leaves_the_frame_out_of_the_score(pooling):
  """anomaly.border = b: the score is the score of the map less its outer b pixels, however bright the frame (a
  slab edge or a shadow along the photo's side); the red mask leaves it out too (tests/test_mask.py)."""
  rng = np.random.default_rng(2)
  m = (0.05 + 0.01 * rng.random((20, 24))).astype(np.float32)
  m[9, 4:20] += 0.1  # a faint line inside
  m[-2:, :] = 1.0  # a bright frame along the bottom
  kw = {"pooling": pooling, "topk_fraction": 0.05, "mad_floor": 0.02}
  inner = anomaly.image_score(m[2:-2, 2:-2], **kw)
  assert anomaly.image_score(m, **kw, border=2) == pytest.approx(inner, rel=1e-6)
  assert anomaly.image_score(m, **kw) > inner  # without the border the frame dominates
  tiny = m[:4, :4]  # too small to have a border of 2: scored whole
  assert anomaly.image_score(tiny, **kw, border=2) == anomaly.image_score(tiny, **kw)


def test_healing_changes_a_clean_image_little_and_a_painted_crack_a_lot(key):
  """With the exact denoiser of 'normal' data (pixels ~ N(0.2, 0.05^2)), healing leaves a normal image almost as it
  was and paints over a dark line: the anomaly map lights up on the line only."""
  mu, s = 0.2, 0.05
  clean = mu + s * jax.random.normal(key, (1, 32, 32, 3))
  cracked = clean.at[:, 14:17, 4:28].set(-0.8)
  cfg = anomaly.HealConfig(
    sampler="ddim",
    steps=10,
    eta=0.0,
    t_start=400,
    num_draws=2,
    channels="mean",
    smoothing_sigma=1.0,
    line_sigma=0.0,
    pooling="topk",
    topk_fraction=0.02,
  )
  x = jnp.concatenate([clean, cracked])
  m, x_hat = anomaly.anomaly_map(gaussian_denoiser(mu, s), SCHED, x, jax.random.split(key, 2), cfg)
  scores = [anomaly.image_score(a, pooling="topk", topk_fraction=0.02) for a in np.asarray(m)]
  assert m.shape == (2, 32, 32) and x_hat.shape == x.shape
  assert scores[0] < 0.15 and scores[1] > 0.5
  assert float(m[1, 14:17, 6:26].mean()) > 5 * float(m[1, :8].mean())


def test_schedule_dtype_is_float32():
  assert sch.make_schedule(kind="cosine", num_timesteps=10, beta_start=1e-4, beta_end=0.02).alpha_bar.dtype == np.float32


def test_the_line_filter_keeps_a_lines_height_and_averages_a_dot_away():
  """Known answers: an infinite 1-px line along a kernel's axis responds with the across profile's centre value,
  1 / sum_v exp(-v^2 / 2 sigma^2); a single pixel with the kernel's centre value, sqrt(2 pi) sigma_along times
  smaller; the filter commutes with 90-degree rotations; line_sigma = 0 is the Gaussian smoothing."""
  sa, sc = 6.0, 1.0
  r = int(round(3 * sa))
  across = np.exp(-0.5 * (np.arange(-r, r + 1) / sc) ** 2)
  line = np.zeros((1, 64, 64), np.float32)
  line[0, 31, :] = 1.0
  out = np.asarray(anomaly.smooth(jnp.asarray(line), sc, sa))
  np.testing.assert_allclose(out[0, 31, 20:44], 1 / across.sum(), rtol=1e-4)
  gauss = np.asarray(anomaly.smooth(jnp.asarray(line), 3.0))
  assert out[0, 31, 32] > 2.9 * gauss[0, 31, 32]  # a Gaussian of sigma 3 keeps a third of it
  dot = np.zeros((1, 64, 64), np.float32)
  dot[0, 31, 31] = 1.0
  d = np.asarray(anomaly.smooth(jnp.asarray(dot), sc, sa))[0, 31, 31]
  along = np.exp(-0.5 * (np.arange(-r, r + 1) / sa) ** 2)
  np.testing.assert_allclose(d, 1 / (across.sum() * along.sum()), rtol=1e-4)
  assert d < out[0, 31, 32] / (np.sqrt(2 * np.pi) * sa) * 1.01
  rng = np.random.default_rng(0)
  m = rng.random((1, 40, 48)).astype(np.float32)
  np.testing.assert_allclose(
    np.asarray(anomaly.smooth(jnp.asarray(np.rot90(m, axes=(1, 2)).copy()), 1.5, 4.0)),
    np.rot90(np.asarray(anomaly.smooth(jnp.asarray(m), 1.5, 4.0)), axes=(1, 2)),
    atol=1e-5,
  )
  for n in (1, 5, 40):  # the gather-based padding is NumPy's reflect, also on axes shorter than the pad
    x = rng.random((2, n, 3)).astype(np.float32)
    np.testing.assert_array_equal(
      np.asarray(anomaly._reflect_pad(jnp.asarray(x), 18, 1)), np.pad(x, ((0, 0), (18, 18), (0, 0)), "reflect")
    )
  plain = np.asarray(anomaly.gaussian_smooth(jnp.asarray(m), 2.0))
  k = anomaly.gaussian_kernel1d(2.0)  # the Gaussian pads the same way, also a map shorter than its kernel
  small = rng.random((1, 4, 30)).astype(np.float32)
  want = np.pad(small, ((0, 0), (6, 6), (0, 0)), "reflect")
  want = np.stack([np.convolve(c, k, "valid") for c in want[0].T], 1)[None]
  want = np.pad(want, ((0, 0), (0, 0), (6, 6)), "reflect")
  want = np.stack([np.convolve(r, k, "valid") for r in want[0]], 0)[None]
  np.testing.assert_allclose(anomaly.gaussian_smooth(jnp.asarray(small), 2.0), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(anomaly.smooth(jnp.asarray(m), 2.0, 0.0)), plain)


def test_the_pyramid_map_is_the_max_over_levels_of_the_same_map(key):
  """pyramid = 2: the level-0 map (exactly pyramid = 1's, same keys) and the map of the 2x2-averaged image (its
  own keys), upsampled by repetition; their pixelwise max. downsample2 is the mean of each 2x2 block."""
  x = 0.2 + 0.05 * jax.random.normal(key, (2, 16, 24, 3))
  x = x.at[:, 6:10].set(-0.8)  # a dark band 4 px wide
  np.testing.assert_allclose(anomaly.downsample2(x), np.asarray(x).reshape(2, 8, 2, 12, 2, 3).mean((2, 4)), atol=1e-6)
  one = anomaly.HealConfig("ddim", 1, 0.0, 200, 1, "luma", 1.0, 2.0, "topk", 0.02)
  two = dataclasses.replace(one, pyramid=2)
  keys = jax.random.split(key, 2)
  eps = gaussian_denoiser(0.2, 0.05)
  m1, _ = anomaly.anomaly_map(eps, SCHED, x, keys, one)
  coarse_keys = jax.vmap(lambda k: jax.random.fold_in(k, 10_001))(keys)
  coarse, _ = anomaly.anomaly_map(eps, SCHED, anomaly.downsample2(x), coarse_keys, one)
  m2, _ = anomaly.anomaly_map(eps, SCHED, x, keys, two)
  want = np.maximum(m1, np.repeat(np.repeat(np.asarray(coarse), 2, 1), 2, 2))
  np.testing.assert_allclose(m2, want, rtol=1e-5, atol=1e-6)
  assert (np.asarray(m2) > np.asarray(m1) + 1e-3).any()  # the coarse level wins somewhere (beside the band)
  assert (two.multiple, dataclasses.replace(one, pyramid=3).multiple, one.multiple) == (2, 4, 1)


def test_the_darkness_term_is_the_max_of_the_map_and_the_weighted_relative_darkness(key):
  """darkness = w: map = max(healing map, w (median(L) - L) / median(L)). Known answer without smoothing: on grey
  L = 0.6 with a band at L = 0.15 the relative darkness is 0.75 on the band, 0 off it; a band wider than the healing
  repaints keeps a residual only at its edges, so the darkness term is what lights its middle."""
  x = jnp.full((1, 32, 16, 3), 0.2).at[:, 8:23].set(-0.7)  # luminance 0.6, a band of 15 of 32 rows at 0.15
  rel = np.asarray(anomaly.relative_darkness(x, 0.0))
  np.testing.assert_allclose(rel[0, 15], 0.75, rtol=1e-5)
  np.testing.assert_allclose(rel[0, 0], 0.0, atol=1e-6)
  base = anomaly.HealConfig("ddim", 1, 0.0, 200, 1, "luma", 1.0, 0.0, "topk", 0.02, pyramid=2)
  dark = dataclasses.replace(base, darkness=0.5, darkness_sigma=0.0)
  keys = jax.random.split(key, 1)
  eps = gaussian_denoiser(-0.7, 0.05)  # a model that heals everything into the band's own grey
  m0, h0 = anomaly.anomaly_map(eps, SCHED, x, keys, base)
  m1, h1 = anomaly.anomaly_map(eps, SCHED, x, keys, dark)
  np.testing.assert_array_equal(h0, h1)  # the healing is untouched
  np.testing.assert_allclose(m1, np.maximum(m0, 0.5 * rel), rtol=1e-6)
  assert float(m1[0, 15, 8]) > float(m0[0, 15, 8]) + 0.1  # the band's middle is lit by the darkness term


def test_the_localization_map_is_the_image_map_plus_the_weighted_relative_darkness():
  """localization_darkness = w: L = map + w (mean(L) - L) / mean(L), a sum. Known answer without smoothing: 10 rows
  of grey 150, 5 of a band at 50 and 5 brighter at 225 have the mean 143.75, so L = map + w (143.75 - v) / 143.75
  on each, lower where brighter; w = 0 is the map. A band covering more than half the photo is still dark: its
  median would be the band's own grey. The export loader's copy (NumPy, no crackjax) gives the same map with
  smoothing, on an odd-sized image."""
  from crackjax import export_loader

  img = np.full((20, 9, 3), 150, np.uint8)
  img[4:9] = 50
  img[15:] = 225  # brighter than the median: (150 - 225) / 150 = -0.5
  m = np.random.default_rng(0).random((20, 9)).astype(np.float32)
  np.testing.assert_array_equal(anomaly.localization_map(m, img, 0.0, 1.0), m)
  loc = anomaly.localization_map(m, img, 1.5, 0.0)
  ref = 143.75
  want = m + 1.5 * (ref - 150) / ref
  want[4:9] = m[4:9] + 1.5 * (ref - 50) / ref
  want[15:] = m[15:] + 1.5 * (ref - 225) / ref
  np.testing.assert_allclose(loc, want, rtol=1e-5, atol=1e-5)
  gap = np.full((20, 9, 3), 150, np.uint8)
  gap[:12] = 50  # 12 of 20 rows: the median is the gap's grey, the mean (90) is not
  np.testing.assert_allclose(anomaly.localization_map(np.zeros((20, 9), np.float32), gap, 1.0, 0.0)[0, 0], 40 / 90, rtol=1e-5)
  with pytest.raises(ValueError, match="cannot be fused"):
    anomaly.localization_map(m[:10], img, 1.5, 0.0)
  rough = np.random.default_rng(1).integers(0, 256, (23, 17, 3)).astype(np.uint8)
  m2 = np.random.default_rng(2).random((23, 17)).astype(np.float32)
  for s, k, bg in ((1.0, 0.0, 0.0), (1.0, 0.05, 0.0), (1.0, 0.05, 4.0), (1.0, 0.05, 64.0), (0.75, 0.05, 64.0)):
    np.testing.assert_allclose(  # 64: a kernel far wider than the image
      export_loader.localization_map(m2, rough, 1.5, s, k, bg), anomaly.localization_map(m2, rough, 1.5, s, k, bg), atol=1e-5
    )


@pytest.mark.parametrize("n,sigma", [(1, 3.0), (2, 3.0), (5, 64.0), (40, 3.0), (113, 64.0)])
def test_the_gaussian_operator_is_gaussian_smooth_as_a_matrix(n, sigma):
  """gaussian_operator(n, s) @ x @ gaussian_operator(w, s).T = gaussian_smooth(x, s), borders included, also where
  the kernel (385 taps at sigma 64) is far longer than the axis; the export loader's copy too. The rows sum to 1."""
  from crackjax import export_loader

  x = np.random.default_rng(n).random((n, 9)).astype(np.float32)
  want = np.asarray(anomaly.gaussian_smooth(jnp.asarray(x)[None], sigma))[0]
  for mod in (anomaly, export_loader):
    np.testing.assert_allclose(mod.gaussian_operator(n, sigma) @ x @ mod.gaussian_operator(9, sigma).T, want, atol=1e-6)
  np.testing.assert_allclose(anomaly.gaussian_operator(n, sigma).sum(1), 1.0, rtol=1e-6)


def test_a_local_background_follows_uneven_lighting_where_the_mean_does_not():
  """localization_background = s: the reference is the luminance smoothed with sigma s. On a linear ramp of
  lighting (60 to 200 grey levels across 60 columns) a Gaussian keeps the ramp itself away from the borders, so
  the darkness there is 0 (known answer) while the mean's is up to (130 - 60) / 130 on the dark side; a dark line
  on the ramp's dark side stands out against its own surroundings: L = map + w (bg - v) (1 / bg + k / std)."""
  ramp = np.tile(np.linspace(60, 200, 60)[None, :, None], (30, 1, 3))
  img = np.round(ramp).astype(np.uint8)
  zero = np.zeros((30, 60), np.float32)
  bg = anomaly.localization_map(zero, img, 1.0, 0.0, 0.0, 3.0)
  mean = anomaly.localization_map(zero, img, 1.0, 0.0, 0.0, 0.0)
  np.testing.assert_allclose(bg[:, 10:-10], 0.0, atol=5e-3)  # rounding to grey levels: |error| <= 0.5 / 60
  assert mean[:, :10].min() > 0.35 and mean[:, -10:].max() < -0.35  # the mean calls the dark side dark
  lined = img.copy()
  lined[:, 15] = (lined[:, 15] * 0.5).astype(np.uint8)  # a dark line on the dark side
  loc = anomaly.localization_map(zero, lined, 1.0, 0.0, 0.05, 3.0)
  lum = lined[..., 0].astype(np.float64) / 255
  from scipy import ndimage

  ref = ndimage.gaussian_filter(lum, 3.0, mode="mirror", truncate=3.0)
  want = (ref - lum) * (1 / ref + 0.05 / lum.std())
  np.testing.assert_allclose(loc[:, 5:-5], want[:, 5:-5], atol=1e-4)
  assert loc[15, 15] > 5 * np.abs(loc[15, 30:50]).max()


def test_the_localization_zscore_adds_the_darkness_in_units_of_the_images_spread():
  """localization_zscore = k: L = map + w (mean - L) (1 / mean + k / std). Known answer without smoothing on the
  banded image (greys 150 x 10 rows, 50 x 5, 225 x 5: mean 143.75, std sqrt(3867.1875) = 62.19); k = 0 is the
  relative darkness alone. The same crack contrast on a smooth and on a rough surface (a dark line of -20 grey
  levels on a flat grey and on a noisy one): with k > 0 the line on the smooth surface lights up more than the
  one on the rough surface, with k = 0 (the same mean) both alike."""
  img = np.full((20, 9, 3), 150, np.uint8)
  img[4:9] = 50
  img[15:] = 225
  m = np.random.default_rng(0).random((20, 9)).astype(np.float32)
  grey = np.array([150.0] * 10 + [50.0] * 5 + [225.0] * 5)
  ref, std = grey.mean(), grey.std()
  assert abs(ref - 143.75) < 1e-9 and abs(std - np.sqrt(3867.1875)) < 1e-9
  row = np.array([150.0] * 4 + [50.0] * 5 + [150.0] * 6 + [225.0] * 5)
  want = m + 1.5 * ((ref - row) * (1 / ref + 0.05 / std))[:, None]
  np.testing.assert_allclose(anomaly.localization_map(m, img, 1.5, 0.0, 0.05), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(anomaly.localization_map(m, img, 1.5, 0.0, 0.0), anomaly.localization_map(m, img, 1.5, 0.0))
  rng = np.random.default_rng(3)
  smooth = np.full((40, 40, 3), 128.0)
  rough = smooth + rng.normal(0, 25, (40, 40, 1))
  line = {}
  for name, surface in (("smooth", smooth), ("rough", rough)):
    surface = surface.copy()
    surface[20] -= 20  # the same crack contrast on both
    surface = np.clip(surface, 0, 255).astype(np.uint8)
    for k in (0.0, 0.05):
      loc = anomaly.localization_map(np.zeros((40, 40), np.float32), surface, 1.0, 0.0, k)
      line[name, k] = float(loc[20].mean() - np.median(loc))
  assert abs(line["smooth", 0.0] - line["rough", 0.0]) < 0.1 * line["smooth", 0.0]
  assert line["smooth", 0.05] > 2 * line["rough", 0.05]


def test_averaging_the_healings_cancels_the_noise_that_averaging_residuals_keeps(key):
  """A denoiser that predicts no noise (eps_hat = 0) heals x0 into x0 + c eps, c = sqrt((1 - ab) / ab): the
  residuals of K draws average to c E|eps| = c sqrt(2 / pi) whatever K; the residual of the mean healing is
  c |mean of K eps|, whose mean is c sqrt(2 / (pi K)); antithetic pairs (eps, -eps) cancel it exactly."""
  x0 = jnp.zeros((2, 64, 64, 3))
  t = 20
  ab = float(SCHED.alpha_bar[t])
  c = np.sqrt((1 - ab) / ab)  # about 0.07: x_hat stays far inside the clip to [-1, 1]
  keys = jax.random.split(key, 2)
  zero_eps = lambda x_t, tt: jnp.zeros_like(x_t)  # noqa: E731
  base = anomaly.HealConfig("ddim", 1, 0.0, t, 4, "mean", 0.0, 0.0, "topk", 0.02)

  def mean_map(**kw):
    m, x_hat = anomaly.anomaly_map(zero_eps, SCHED, x0, keys, dataclasses.replace(base, **kw))
    return float(np.asarray(m).mean()), np.asarray(x_hat)

  residual, _ = mean_map()
  healing, _ = mean_map(average="healing")
  one, _ = mean_map(num_draws=1)
  one_healing, _ = mean_map(num_draws=1, average="healing")
  anti, anti_hat = mean_map(average="healing", antithetic=True)
  np.testing.assert_allclose(residual, c * np.sqrt(2 / np.pi), rtol=0.02)
  np.testing.assert_allclose(healing, c * np.sqrt(2 / (np.pi * 4)), rtol=0.02)
  np.testing.assert_allclose(one_healing, one, rtol=1e-6)  # one draw: the two averages agree
  assert anti < 1e-6 and np.abs(anti_hat).max() < 1e-6  # the mean healing shown is x0 itself
