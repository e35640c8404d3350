"""The Scorer machinery every kind shares: size buckets, tiles without seams, streaming, per-image noise."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crackjax import scorer as scorer_lib
from crackjax import student
from crackjax.scorer import SAMPLE_STRIDE, Scorer, Tiling, bucket_side, compute_maps, fill_maps, iter_maps


def _local_scorer(radius: int = 3, multiple: int = 4, noise: bool = False) -> Scorer:
  """A map that depends on a (2r+1)^2 neighbourhood only (a box mean of the darkness), and optionally noise."""

  def maps(params, x, key, ids):
    d = -x.mean(-1)
    k = jnp.ones((2 * radius + 1, 2 * radius + 1, 1, 1)) / (2 * radius + 1) ** 2
    m = jax.lax.conv_general_dilated(d[..., None], k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))[..., 0]
    if noise:
      keys = jax.vmap(jax.random.fold_in, (None, 0))(key, ids)
      m = m + jax.vmap(lambda k: jax.random.normal(k, x.shape[1:3]))(keys)
    return m

  info = {"kind": "test", "params": 0, "pooling": "max", "topk_fraction": 0.01}
  return Scorer(jax.jit(maps), None, multiple, lambda shape: 1.0, info)


def test_buckets_are_few_and_never_smaller_than_the_image():
  sides = range(8, 700)
  buckets = {bucket_side(n, 8) for n in sides}
  assert all(bucket_side(n, 8) >= n and bucket_side(n, 8) % 8 == 0 for n in sides)
  assert len(buckets) <= 14 and max(bucket_side(n, 8) / n for n in range(64, 700)) <= 1.5


def test_a_mixed_folder_compiles_once_per_bucket_and_each_image_comes_back_once(key):
  rng = np.random.default_rng(0)
  sizes = [(37, 41), (40, 40), (33, 47), (60, 20), (61, 22), (100, 90), (97, 95), (35, 35), (64, 64), (48, 47), (20, 60)]
  images = [rng.integers(0, 255, (*s, 3), dtype=np.uint8) for s in sizes]
  sc = _local_scorer()
  res = compute_maps(sc, images, key, batch_size=4)
  assert [m.shape for m in res.maps] == sizes
  shapes = {(bucket_side(h, 4), bucket_side(w, 4)) for h, w in sizes}
  assert len(sc.compiled) == len(shapes) < len(set(sizes))
  for img, m, s in zip(images, res.maps, res.scores):  # every image scored on its own map, padding never counted
    alone = compute_maps(_local_scorer(), [img], key, batch_size=1).maps[0]
    h, w = img.shape[:2]
    np.testing.assert_allclose(m[3 : h - 3, 3 : w - 3], alone[3 : h - 3, 3 : w - 3], atol=1e-6)
    assert s == pytest.approx(float(m.max()))


def test_tiles_give_the_untiled_map_where_the_model_reach_fits_the_overlap(key):
  """A crack across tile borders: the tiled map equals the whole-image map (no seams) and so does its score."""
  rng = np.random.default_rng(1)
  img = rng.integers(120, 140, (300, 230, 3), dtype=np.uint8)
  img[150:153, :] = 20  # a crack crossing every vertical tile border
  img[:, 100:102] = 30  # and one crossing the horizontal ones
  sc = _local_scorer(radius=3)
  whole = compute_maps(sc, [img], key, batch_size=2, tile=Tiling(max_side=1000)).maps[0]
  tiled = compute_maps(_local_scorer(radius=3), [img], key, batch_size=2, tile=Tiling(max_side=64, size=64, overlap=8))
  assert len([s for s in _local_scorer().compiled]) == 0  # (a fresh scorer per run)
  np.testing.assert_allclose(tiled.maps[0], whole, atol=1e-5)
  assert tiled.scores[0] == pytest.approx(float(whole.max()))


def test_the_student_network_is_seam_free_with_the_default_overlap(key):
  """The real student net (coarse-to-fine, K = 3, reach 44 px): tiles of 128 with the default 48-pixel overlap
  reproduce the whole-image map away from the outer border."""
  cfg = student.StudentConfig("coarse_to_fine", channels=4, stages=3)
  net = student.StudentNet(cfg)
  params = net.init(key, jnp.zeros((1, 32, 32, 3)))["params"]
  info = {"kind": "student", "params": 0, "pooling": "max", "topk_fraction": 0.01}
  make = lambda: Scorer(jax.jit(lambda p, x, k, i: net.apply({"params": p}, x)[-1]), params, cfg.multiple, lambda s: 1.0, info)  # noqa: E731
  img = np.random.default_rng(2).integers(0, 255, (256, 200, 3), dtype=np.uint8)
  whole = compute_maps(make(), [img], key, batch_size=2, tile=Tiling(max_side=1000)).maps[0]
  tiled = compute_maps(make(), [img], key, batch_size=2, tile=Tiling(max_side=128, size=128, overlap=Tiling().overlap)).maps[0]
  # Coarse-to-fine maps are at 1/1 resolution for K = 3; compare the interior (outer border padding differs).
  np.testing.assert_allclose(tiled[:224, :184], whole[:224, :184], atol=1e-4)


def test_memory_is_bounded_by_the_tile_batch(key):
  """A 4000x3000 photo is cut into tiles: no batch is ever larger than batch_size tiles."""
  seen = []
  sc = _local_scorer()
  real = scorer_lib._dispatch

  def spy(scorer, batch, batch_size, key, stats):
    seen.append((len(batch), batch[0].x.shape))
    return real(scorer, batch, batch_size, key, stats)

  scorer_lib._dispatch = spy
  try:
    img = np.full((3000, 4000, 3), 128, np.uint8)
    small = np.full((60, 100, 3), 128, np.uint8)
    out = list(iter_maps(sc, [("big", 0, img), ("small", 1, small)], key, batch_size=8, tile=Tiling()))
  finally:
    scorer_lib._dispatch = real
  assert sorted(t for t, _, _ in out) == ["big", "small"]
  assert all(n <= 8 for n, _ in seen) and {s for _, s in seen} == {(384, 384, 3), (64, 128, 3)}
  assert dict((t, m.shape) for t, m, _ in out) == {"big": (3000, 4000), "small": (60, 100)}


def test_an_images_noise_does_not_depend_on_its_batch(key):
  rng = np.random.default_rng(3)
  images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
  a = compute_maps(_local_scorer(noise=True), images, key, batch_size=4)
  b = compute_maps(_local_scorer(noise=True), images[::-1], key, batch_size=2)
  c = compute_maps(_local_scorer(noise=True), images, jax.random.fold_in(key, 1), batch_size=4)
  # Reversed order means other ids: equal noise needs equal ids, so compare through iter_maps with explicit ids.
  ids = list(
    iter_maps(_local_scorer(noise=True), [(i, 10 + i, im) for i, im in enumerate(images)], key, batch_size=4, tile=Tiling())
  )
  rev = list(
    iter_maps(_local_scorer(noise=True), [(i, 10 + i, images[i]) for i in (4, 3, 2, 1, 0)], key, batch_size=2, tile=Tiling())
  )
  by = {t: m for t, m, _ in rev}
  for t, m, _ in ids:  # batches of 4 run on 4 devices, of 2 on 2: the same noise, rounding apart
    np.testing.assert_allclose(m, by[t], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a.maps[0], c.maps[0]) and len(b.maps) == 5


def test_the_benchmark_reports_speed_and_a_mixed_folder_compiles_a_handful_of_times(tmp_path, monkeypatch):
  from configs import darkness
  from crackjax import benchmark

  monkeypatch.setattr(benchmark, "machine_peak", lambda: {"matmul_gflops_per_second": 100.0, "conv_gflops_per_second": 50.0})
  c = darkness.get_config("tiny")
  out = benchmark.benchmark(c, str(tmp_path))
  assert out["machine"] and out["command"] and out["model"]["params"] == 0
  rows = {r["images"]: r for r in out["predict"]}
  mixed = rows["mixed folder: 11 images, 9 sizes"]
  buckets = {(bucket_side(h, 1), bucket_side(w, 1)) for h, w in benchmark.MIXED_SIZES}
  assert mixed["compilations"] == len(buckets) < 9
  assert rows["4000x3000 photo"]["compilations"] == 1  # every tile has one shape
  assert all(r["gflops_per_second"] > 0 for r in out["predict"])
  folder = out["predict_folder"]  # the predict command on a folder, every photo flagged
  assert folder["images"] == benchmark.PREDICT_FOLDER and 0 < folder["model_share"] < 1 and folder["images_per_second"] > 0
  assert os.path.exists(tmp_path / "benchmark.json")
  assert "command : predict on a folder" in benchmark.format_report(out)


def test_maps_dropped_while_streaming_are_rescored_identically(key):
  """A streamed evaluation keeps only some maps and rescores the figures' images later: same noise ids, same maps."""
  rng = np.random.default_rng(4)
  images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
  full = compute_maps(_local_scorer(noise=True), images, key, batch_size=4)
  keep = np.array([True, False, False, False, False])
  part = compute_maps(_local_scorer(noise=True), images, key, batch_size=4, keep=keep)
  assert part.maps[0] is not None and all(m is None for m in part.maps[1:])
  np.testing.assert_array_equal(part.scores, full.scores)
  assert part.sample.size == 5 * -(-32 * 32 // SAMPLE_STRIDE)  # every map sampled, kept or not
  fill_maps(_local_scorer(noise=True), images, part, [3, 1, 3], key, batch_size=4)
  assert part.maps[2] is None and part.maps[4] is None
  for i in (0, 1, 3):
    np.testing.assert_array_equal(part.maps[i], full.maps[i])


@pytest.mark.parametrize("name", ["ddim_50", "student_coarse_to_fine", "vae"])
def test_micro_batches_give_each_kind_the_maps_of_one_pass(key, name):
  """eval.micro_batch loops over the batch (jax.lax.map, with a remainder here: 5 images in 2s); each image keeps
  its own noise, so the maps are one pass's, for the teacher's noisy healing and the VAE's samples too."""
  import importlib

  from crackjax import kinds

  c = importlib.import_module(f"configs.{name}").get_config("tiny")
  x = jax.random.uniform(key, (5, 32, 32, 3), minval=-1, maxval=1)
  ids = jnp.arange(10, 15, dtype=jnp.int32)
  out = {}
  for micro in (0, 2):
    with c.unlocked():
      c.eval.micro_batch = micro
    sc = kinds.get(c.model.kind).init_scorer(c)
    out[micro] = np.asarray(sc.maps(sc.params, x, key, ids))
  assert out[0].shape == (5, 32, 32) and out[0].std() > 0
  np.testing.assert_allclose(out[2], out[0], rtol=1e-4, atol=1e-5)


def test_prefetch_keeps_the_order_raises_where_the_item_failed_and_stops_when_left():
  """Produced ahead by a thread: the same items in the same order; an error raised by the producer comes where its
  item would have; a consumer that leaves early does not leave the producer running."""
  import threading
  import time

  from crackjax.scorer import prefetch

  assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

  def failing():
    yield 1
    yield 2
    raise OSError("disk gone")

  got = []
  with pytest.raises(OSError, match="disk gone"):
    for x in prefetch(failing()):
      got.append(x)
  assert got == [1, 2]
  made = []

  def endless():
    i = 0
    while True:
      made.append(i)
      yield i
      i += 1

  before = threading.active_count()
  for x in prefetch(endless(), depth=2):
    if x == 5:
      break
  time.sleep(0.2)
  assert threading.active_count() == before and len(made) <= 5 + 1 + 2 + 1  # at most depth ahead, then stopped


@pytest.mark.parametrize("kind", ["local", "teacher"])
def test_scoring_splits_a_batch_over_the_devices_and_gives_the_one_device_maps(kind, key, tiny_config):
  from crackjax import teacher

  sc = _local_scorer(noise=True) if kind == "local" else teacher.init_scorer(tiny_config)
  x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
  ids = np.arange(7, 11, dtype=np.int32)
  executable, devices, _ = scorer_lib.compile_maps(sc, x, key, ids)
  out = executable(scorer_lib.params_on(sc, devices), x, key, ids)
  assert len(out.sharding.device_set) == jax.device_count() == 4  # one row per device
  np.testing.assert_allclose(np.asarray(out), np.asarray(sc.maps(sc.params, x, key, ids)), rtol=1e-4, atol=1e-5)
  assert scorer_lib.spread(6).devices.size == 3 and scorer_lib.spread(5) is None  # the most devices that divide


def test_a_last_part_filled_batch_is_padded_to_the_next_power_of_two_the_devices_divide(key, monkeypatch):
  assert [scorer_lib.last_batch(n, 16) for n in (1, 3, 4, 5, 9, 15)] == [4, 4, 4, 8, 16, 16]  # 4 devices here
  assert scorer_lib.last_batch(3, 2) == 2
  rows, real = [], scorer_lib._dispatch
  monkeypatch.setattr(scorer_lib, "_dispatch", lambda sc, batch, size, k, st: rows.append(size) or real(sc, batch, size, k, st))
  images = [np.full((32, 32, 3), 100 + i, np.uint8) for i in range(21)]
  compute_maps(_local_scorer(), images, key, batch_size=16)
  assert rows == [16, 8]  # 21 = 16 + 5
