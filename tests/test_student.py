"""The diffusion-free student: shapes per architecture, the loss, label-free training, the teacher-map cache, the
student job end to end."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crackjax import jobs, pool, student
from crackjax.data import builders
from crackjax.scorer import Scorer, count_params
from tests.test_data import make_root


@pytest.mark.parametrize(
  "kind,stages,levels",
  [("single_step", 1, [0]), ("coarse_to_fine", 1, [2]), ("coarse_to_fine", 2, [2, 1]), ("coarse_to_fine", 3, [2, 1, 0]),
   ("coarse_to_fine", 4, [3, 2, 1, 0])],
)  # fmt: skip
def test_student_maps_have_one_level_per_stage(key, kind, stages, levels):
  cfg = student.StudentConfig(architecture=kind, channels=4, stages=stages)
  assert cfg.levels == levels
  x = jnp.zeros((2, 48, 32, 3))
  net = student.StudentNet(cfg)
  params = net.init(key, x)["params"]
  maps = net.apply({"params": params}, x)
  assert [m.shape for m in maps] == [(2, 48 // 2**lv, 32 // 2**lv) for lv in levels]
  # Fully convolutional: the same parameters apply to another size.
  assert net.apply({"params": params}, jnp.zeros((1, 16, 64, 3)))[-1].shape == (1, 16 // 2 ** levels[-1], 64 // 2 ** levels[-1])
  m = student.output_map(maps, (48, 32), "soft", 2.0)
  assert m.shape == (2, 48, 32)


def test_space_to_depth_moves_each_pixel_block_into_channels():
  x = jnp.arange(2 * 4 * 6 * 3.0).reshape(2, 4, 6, 3)
  y = student.space_to_depth(x, 2)
  assert y.shape == (2, 2, 3, 12)
  for di in range(2):
    for dj in range(2):  # block offset (di, dj) -> channels (2 di + dj) * 3 ... + 3: no pixel dropped or repeated
      np.testing.assert_array_equal(y[..., (2 * di + dj) * 3 : (2 * di + dj + 1) * 3], x[:, di::2, dj::2])
  assert student.space_to_depth(x, 1) is x


@pytest.mark.parametrize("kind,stages", [("single_step", 1), ("coarse_to_fine", 4)])
def test_an_input_stride_moves_every_map_one_level_down(key, kind, stages):
  """input_stride 2: the network runs on 2 x 2 pixel blocks, so each map is one level coarser than the same
  network's at stride 1, the input must be divisible by twice as much, and the loss pools the target to match."""
  one = student.StudentConfig(architecture=kind, channels=4, stages=stages)
  cfg = student.StudentConfig(architecture=kind, channels=4, stages=stages, input_stride=2)
  assert cfg.levels == one.levels and cfg.map_levels == [lv + 1 for lv in one.levels]
  assert cfg.multiple == 2 * one.multiple
  x = jax.random.uniform(key, (2, 64, 32, 3), minval=-1, maxval=1)
  net = student.StudentNet(cfg)
  params = net.init(key, x)["params"]
  maps = net.apply({"params": params}, x)
  assert [m.shape for m in maps] == [(2, 64 // 2**lv, 32 // 2**lv) for lv in cfg.map_levels]
  assert student.output_map(maps, (64, 32), "soft", 1.0).shape == (2, 64, 32)
  target = jax.random.uniform(key, (2, 64, 32))
  exact = [student.pool_to_level(target, lv) for lv in cfg.map_levels]
  assert float(student.loss_fn(exact, target, cfg.map_levels, "soft")) == 0.0


def test_pooling_and_loss_match_their_definitions():
  y = jnp.arange(16.0).reshape(1, 4, 4)
  np.testing.assert_allclose(student.pool_to_level(y, 1)[0], [[2.5, 4.5], [10.5, 12.5]])
  # A student that outputs the pooled target at every stage has zero soft loss; off by 1 everywhere -> loss 1.
  levels = [1, 0]
  exact = [student.pool_to_level(y, lv) for lv in levels]
  assert float(student.loss_fn(exact, y, levels, "soft")) == 0.0
  np.testing.assert_allclose(float(student.loss_fn([m + 1 for m in exact], y, levels, "soft")), 1.0, rtol=1e-6)
  # Binary: sigmoid cross-entropy with logit 0 is log 2 whatever the target.
  b = (y > 7).astype(jnp.float32)
  np.testing.assert_allclose(float(student.loss_fn([jnp.zeros((1, 4, 4))], b, [0], "binary")), np.log(2.0), rtol=1e-6)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  r = make_root(tmp_path_factory.mktemp("root") / "data", bad=False)
  os.makedirs(os.path.join(r, "unlabeled"))
  from crackjax.data import synthetic
  from tests.test_data import _png

  for i in range(4):
    _png(os.path.join(r, "unlabeled", f"u{i}.png"), synthetic.generate(0, 700 + i, 32, crack=i % 2 == 0)[0])
  return r


def _config(root, **student_fields):
  from configs import student_single_step

  c = student_single_step.get_config(f"tiny,data={root}")
  with c.unlocked():
    c.student.update(**student_fields)
  return c


class _Poisoned(dict):
  """A record whose label-like fields raise when read."""

  def __getitem__(self, k):
    if k in ("label", "mask", "has_mask", "defect"):
      raise AssertionError(f"the student read the field {k!r}")
    return super().__getitem__(k)


def test_the_student_never_reads_a_label(root, tmp_path, monkeypatch):
  """Every label, mask and defect field of every split raises when read; the pool loads and the student trains."""
  c = _config(root)
  teacher_dir = str(tmp_path / "teacher")
  tc = c.copy_and_resolve_references()
  with tc.unlocked():
    tc.model.kind = "teacher"
  jobs.train_only(tc, teacher_dir)
  original = builders.AnomalyFolder.as_data_source

  def poisoned(self, split):
    src = original(self, split=split)

    class Source:
      def __len__(self):
        return len(src)

      def __getitem__(self, i):
        return _Poisoned(src[i])

    return Source()

  monkeypatch.setattr(builders.AnomalyFolder, "as_data_source", poisoned)
  with c.unlocked():
    c.student.teacher_workdir = teacher_dir
  images, names = pool.load_pool(c, str(tmp_path / "s"))
  assert len(images) == 12 + 4 and sum(n.startswith("unlabeled/") for n in names) == 4
  jobs.train_only(c, str(tmp_path / "s"))
  assert os.path.exists(tmp_path / "s" / "student_targets.json")


def test_teacher_maps_are_cached_and_a_lost_shard_is_recomputed(root, tmp_path, monkeypatch):
  c = _config(root, cache_shard_size=5)
  images = [np.full((8 + i, 12, 3), 10 * i, np.uint8) for i in range(12)]
  names = [f"img{i}" for i in range(12)]
  scored = []
  real = pool.compute_maps
  monkeypatch.setattr(pool, "compute_maps", lambda sc, ims, *a, **k: scored.extend(ims) or real(sc, ims, *a, **k))
  info = {"kind": "test", "params": 0, "pooling": "max", "topk_fraction": 0.01}
  scorer = Scorer(jax.jit(lambda p, x, k, i: x.mean(-1)), None, 4, lambda shape: 0.0, info)
  first = pool.teacher_maps(c, str(tmp_path), scorer, images, names)
  (key_dir,) = os.listdir(tmp_path / "teacher_maps")
  cache = tmp_path / "teacher_maps" / key_dir
  assert sorted(os.listdir(cache)) == ["shard_0000.npz", "shard_0001.npz", "shard_0002.npz"]
  for im, m in zip(images, first):
    np.testing.assert_allclose(m, im.mean(-1) / 127.5 - 1, atol=1e-2)  # float16 in the cache
  assert len(scored) == 12
  scored.clear()
  os.remove(cache / "shard_0001.npz")
  (cache / "shard_0002.npz").write_bytes(b"PK\x03\x04 truncated")  # a damaged shard is recomputed, not fatal
  again = pool.teacher_maps(c, str(tmp_path), scorer, images, names)
  assert [im.shape[0] for im in scored] == [13, 14, 15, 16, 17, 18, 19]  # only the lost and the damaged shards
  for a, b in zip(first, again):
    np.testing.assert_allclose(a, b, atol=1e-2)
  # Another teacher (its settings differ) gets its own cache entry; nothing stale is read.
  other = Scorer(jax.jit(lambda p, x, k, i: x.mean(-1)), None, 4, lambda shape: 0.0, {**info, "t_start": 1})
  scored.clear()
  pool.teacher_maps(c, str(tmp_path), other, images, names)
  assert len(scored) == 12 and len(os.listdir(tmp_path / "teacher_maps")) == 2
  # Another pooling of the same maps, or a field at its LEGACY value, reads the same cache: the maps are the same.
  for same in ({**info, "topk_fraction": 0.05, "mad_floor": 0.03}, {**info, "localization_zscore": 0.0}):
    scored.clear()
    pooled = Scorer(jax.jit(lambda p, x, k, i: x.mean(-1)), None, 4, lambda s: 0.0, same)
    pool.teacher_maps(c, str(tmp_path), pooled, images, names)
    assert not scored and len(os.listdir(tmp_path / "teacher_maps")) == 2
  # The same settings with other weights (a teacher trained again into the same workdir) are another teacher too.
  weighted = [
    Scorer(jax.jit(lambda p, x, k, i: x.mean(-1)), {"w": jnp.full(3, v)}, 4, lambda shape: 0.0, info) for v in (0.0, 1.0)
  ]
  for sc in weighted:
    pool.teacher_maps(c, str(tmp_path), sc, images, names)
  assert len(os.listdir(tmp_path / "teacher_maps")) == 4


def test_synthetic_cracks_darken_a_copy():
  img = np.full((20, 30, 3), 200, np.uint8)
  out = pool.draw_synthetic_crack(img, np.random.default_rng(0))
  assert out.shape == img.shape and (out < 200).any() and (out <= 200).all() and (img == 200).all()


@pytest.fixture(scope="module")
def student_run(root, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("student"))
  c = _config(root, synthetic_cracks=0.5)
  return c, workdir, jobs.train_and_evaluate(c, workdir)


def test_student_job_trains_its_teacher_and_reports_like_it(student_run):
  c, workdir, out = student_run
  teacher = json.load(open(os.path.join(workdir, "teacher", "metrics.json")))
  assert out["model"]["kind"] == "student" and teacher["model"]["kind"] == "teacher"
  assert set(teacher["image"]) == set(out["image"]) and set(teacher["pixel"]) == set(out["pixel"])
  assert out["model"]["params"] == count_params(student.create_state(c, jax.random.PRNGKey(0)).params)
  assert out["data"]["n_pool"] == (12 + 4) * 3 // 2  # train/good + unlabeled, and half of those again with a synthetic crack
  assert {"histogram.png", "roc.png", "confusion.png", "worst_misses.png"} <= set(os.listdir(os.path.join(workdir, "plots")))


def test_student_rerun_evaluate_elsewhere_and_binary_targets(student_run, tmp_path):
  c, workdir, out = student_run
  again = jobs.train_and_evaluate(c, workdir)  # checkpoint and cache reused: same scores
  assert again["image"]["auroc"] == out["image"]["auroc"]
  other = make_root(tmp_path / "other", with_val=False, bad=False)
  e = c.copy_and_resolve_references()
  with e.unlocked():
    e.eval.root = other
  res = jobs.evaluate(e, workdir)
  assert res["model"]["kind"] == "student" and os.path.exists(os.path.join(workdir, "eval", "other", "metrics.json"))
  b = c.copy_and_resolve_references()
  with b.unlocked():
    b.student.target = "binary"
    b.student.teacher_workdir = os.path.join(workdir, "teacher")
  bout = jobs.train_and_evaluate(b, str(tmp_path / "binary"))
  assert bout["model"]["target"] == "binary"
  assert 0.0 <= bout["image"]["threshold"] <= 1.0  # a probability map pooled by top-k stays in [0, 1]


def test_a_student_rerun_with_another_architecture_is_refused_before_its_record_changes(student_run):
  c, workdir, _ = student_run
  before = open(os.path.join(workdir, "config.json")).read()
  other = c.copy_and_resolve_references()
  with other.unlocked():
    other.student.channels = 6
  with pytest.raises(ValueError, match="config.student.channels=4, not 6"):
    jobs.train_and_evaluate(other, workdir)
  assert open(os.path.join(workdir, "config.json")).read() == before


@pytest.mark.parametrize("which", ["student", "teacher"])
def test_the_exported_student_and_teacher_agree_with_predict(student_run, root, tmp_path, which):
  """--mode=export of a trained student and of its diffusion teacher (healing noise keyed by the image id, as in
  predict): the stand-alone loader's scores equal predict's within 1e-5, with the same verdicts."""
  import csv
  import importlib.util

  from configs import ddim_50

  c, workdir, _ = student_run
  if which == "teacher":
    c, workdir = ddim_50.get_config(f"tiny,data={root}"), os.path.join(workdir, "teacher")
  c = c.copy_and_resolve_references()
  with c.unlocked():
    c.predict.input, c.predict.name, c.predict.overlays = os.path.join(root, "test"), "exp", "none"
  rows = [r for r in csv.DictReader(open(jobs.predict(c, workdir))) if r["score"]]
  folder = jobs.export(c, workdir)
  spec = importlib.util.spec_from_file_location("crackjax_export", os.path.join(folder, "crackjax_export.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  model = mod.Exported(folder)
  assert len(rows) >= 4
  for r in rows:
    path = r["file"]
    score, verdict, _, _ = model.predict(path, mod.zlib.crc32(os.path.relpath(path, c.predict.input).encode()) & 0x7FFFFFFF)
    assert abs(score - float(r["score"])) <= 1e-5 and verdict == r["verdict"], (path, score, r)
