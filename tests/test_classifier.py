"""The pool classifier (crackjax/classifier.py): known answers for its pseudo-labels, its shift and its input, that it
learns what it is shown, and its training end to end on tiny settings (resume, a damaged pool-score shard, a
mismatched checkpoint, a root without an unlabeled folder)."""

import csv
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.paired_bootstrap import read_scores
from crackjax import anomaly, classifier, jobs
from crackjax.scorer import Scorer, compute_maps
from tests.test_data import _png, make_root


def test_pseudo_cracks_are_the_unlabeled_photos_above_the_train_quantile():
  train = np.arange(1000, dtype=np.float64)  # quantile 0.998 of 0..999: 997.002
  unl = np.array([996.0, 997.0, 997.5, 1200.0, -3.0])
  scores = np.concatenate([train, unl])
  is_unl = np.r_[np.zeros(1000, bool), np.ones(5, bool)]
  pos, th = classifier.pseudo_labels(scores, is_unl, 0.998)
  assert th == pytest.approx(997.002)
  np.testing.assert_array_equal(pos, [False, False, True, True, False])


def test_the_shift_gives_the_logits_the_teacher_scores_spread_on_the_unlabeled_folder():
  scores, logits = np.array([1.0, 2.0, 3.0, 4.0, 10.0]), np.array([-5.0, 0.0, 5.0, 10.0, 15.0])
  info = dict(zip(("score_median", "score_mad"), classifier.robust_scale(scores)))
  info.update(zip(("logit_median", "logit_mad"), classifier.robust_scale(logits)))
  assert (info["score_median"], info["score_mad"], info["logit_median"], info["logit_mad"]) == (3.0, 1.0, 5.0, 5.0)
  # (logit - 5) / 5 in the teacher's MAD units, times the weight
  assert classifier.shift(1.0, info, 15.0) == pytest.approx(2.0)
  assert classifier.shift(0.5, info, 0.0) == pytest.approx(-0.5)
  assert classifier.robust_scale(np.ones(4))[1] > 0  # a constant never divides by 0


def test_the_input_forgets_the_surface_colour_and_turns_portraits_to_landscape():
  rng = np.random.default_rng(0)
  img = rng.integers(60, 180, (20, 30, 3)).astype(np.uint8)
  a = classifier.standardize(img)
  assert a.shape == (20, 30, 3) and abs(float(a.mean())) < 1e-5
  brighter = img + np.uint8(50)  # the same surface in stronger light: the same input
  np.testing.assert_allclose(classifier.standardize(brighter), a, atol=1e-5)
  # Each colour's mean goes: a tint moves the three means apart, which the spread (all colours) then counts.
  tinted = (img.astype(np.int16) + np.array([40, -30, 10])).astype(np.uint8)
  np.testing.assert_allclose(classifier.standardize(tinted).mean((0, 1)), 0.0, atol=1e-5)
  assert classifier.standardize(img.transpose(1, 0, 2)).shape == (20, 30, 3)
  assert classifier.fit_canvas(a, 24, 36, crop=True).shape == (24, 36, 3)
  assert classifier.fit_canvas(a, 16, 20, crop=True).shape == (16, 20, 3)
  assert classifier.fit_canvas(a, 16, 20, crop=False).shape == (20, 30, 3)  # scoring never cuts a photo
  assert classifier.canvas_of([img, img.transpose(1, 0, 2), img[:10]]) == (20, 30)


def test_the_map_channel_keeps_a_maps_shape_and_forgets_its_strength():
  rng = np.random.default_rng(0)
  m = rng.random((20, 30)).astype(np.float32)
  m[5, 2:28] += 4.0  # a line
  m[0, 0] = 1000.0  # one wild pixel
  u = classifier.map_channel(m)
  assert u.shape == (20, 30, 1) and u.dtype == np.float32
  assert float(np.median(u)) == pytest.approx(0.0, abs=1e-6)  # the median goes to 0 ...
  assert float(np.percentile(u, classifier.MAP_QUANTILE)) == pytest.approx(1.0, abs=1e-5)  # ... the 99.5th to 1
  assert u.max() == classifier.MAP_CLIP[1] and u.min() >= classifier.MAP_CLIP[0]
  np.testing.assert_allclose(classifier.map_channel(0.01 * m + 7.0), u, atol=1e-4)  # a faint line looks as a dark one
  np.testing.assert_array_equal(classifier.map_channel(np.full((4, 5), 3.0)), 0.0)  # a flat map: no line, no NaN
  # A portrait photo is turned with its map: the photo's dark pixel and the map's bright one stay together.
  img = np.full((30, 20, 3), 150, np.uint8)
  img[25, 3] = 0
  loc = 0.1 * rng.random((30, 20)).astype(np.float32)
  loc[25, 3] = 1.0
  x = classifier.inputs(img, loc)
  assert x.shape == (20, 30, 4)
  np.testing.assert_array_equal(classifier.inputs(img, loc, "map"), x[..., 3:])
  assert np.unravel_index(np.argmin(x[..., 0]), x.shape[:2]) == np.unravel_index(np.argmax(x[..., 3]), x.shape[:2])
  np.testing.assert_array_equal(classifier.inputs(img), classifier.standardize(img))
  with pytest.raises(ValueError, match="localization map of shape"):
    classifier.inputs(img, loc.T)


@pytest.mark.parametrize("kind", ["photo_map", "map"])
def test_with_the_map_as_input_the_classifier_learns_a_line_that_only_the_map_shows(kind):
  """Photos of plain noise, their maps alike but for a line: with the map among its inputs the classifier ranks new photos whose
  map has a line above those without; it reads the map, and a photo without one is refused."""
  from configs import ddim_50

  rng = np.random.default_rng(0)

  def sample(n, line):
    imgs, maps = [], []
    for _ in range(n):
      imgs.append(rng.normal(128, 12, (16, 16, 3)).clip(0, 255).astype(np.uint8))
      m = 0.01 * rng.random((16, 16)).astype(np.float32)
      if line:
        m[rng.integers(2, 14), 1:15] += 2.0 * rng.random() + 0.05  # strong or faint: the same channel
      else:
        m[tuple(rng.integers(1, 15, (2, 3)))] += 2.0 * rng.random() + 0.05  # spots
      maps.append(m)
    return imgs, maps

  c = ddim_50.get_config("tiny")
  with c.unlocked():
    c.classifier.update(channels=(8, 8), num_steps=150, batch_size=16, learning_rate=3e-3, warmup_steps=5, input=kind)
  state = classifier.create_state(c, jax.random.PRNGKey(0), (16, 16))
  step = jax.jit(classifier.make_step())
  pos, neg = (np.stack([classifier.inputs(i, m, kind) for i, m in zip(*sample(n, line))]) for n, line in ((16, 1), (64, 0)))
  batches = classifier.batches(pos, neg, batch_size=16, seed=0, start_step=0)
  for _ in range(c.classifier.num_steps):
    state, _ = step(state, tuple(jnp.asarray(b) for b in next(batches)), None)
  fn = classifier.mean_logit_fn(c, [state.params], (16, 16))
  with_line, without = ([fn(i, m) for i, m in zip(*sample(20, line))] for line in (True, False))
  assert min(with_line) > max(without)
  with pytest.raises(ValueError, match=f"input={kind!r}.*localization map"):
    fn(sample(1, False)[0][0])


def test_the_classifier_learns_a_dark_line_from_sound_photos():
  """Trained as the pipeline trains it, on pseudo-cracks with a dark line against plain noise, it ranks new photos
  with a line above new photos without one."""
  from configs import ddim_50
  from crackjax import train as train_lib

  rng = np.random.default_rng(0)

  def photos(n, line):
    out = []
    for _ in range(n):
      a = rng.normal(128, 12, (16, 16, 3))
      if line:
        r = rng.integers(2, 14)
        a[r, 1:15] -= 60
      out.append(classifier.standardize(np.clip(a, 0, 255).astype(np.uint8)))
    return np.stack(out)

  c = ddim_50.get_config("tiny")
  with c.unlocked():
    c.classifier.update(channels=(8, 8), num_steps=150, batch_size=16, learning_rate=3e-3, warmup_steps=5)
  state = classifier.create_state(c, jax.random.PRNGKey(0), (16, 16))
  step = jax.jit(classifier.make_step())
  batches = classifier.batches(photos(16, True), photos(64, False), batch_size=16, seed=0, start_step=0)
  for _ in range(c.classifier.num_steps):
    state, m = step(state, tuple(jnp.asarray(b) for b in next(batches)), None)
  assert np.isfinite(float(m["loss"]))
  net = classifier.net(c)
  pos, neg = (np.asarray(net.apply({"params": state.params}, photos(20, line))) for line in (True, False))
  assert pos.min() > neg.max()
  del train_lib


def test_an_ensemble_scores_the_mean_of_its_members_logits():
  from configs import ddim_50

  c = ddim_50.get_config("tiny")
  states = [classifier.create_state(c, jax.random.PRNGKey(k), (16, 16)) for k in range(3)]
  img = np.random.default_rng(1).integers(0, 255, (12, 20, 3)).astype(np.uint8)
  each = [classifier.mean_logit_fn(c, [s.params], (16, 16))(img) for s in states]
  assert len(set(each)) == 3
  assert classifier.mean_logit_fn(c, [s.params for s in states], (16, 16))(img) == pytest.approx(np.mean(each), rel=1e-5)


def _constant_scorer(level: float, shift: float | None) -> Scorer:
  def maps(params, x, key, ids):
    del params, key, ids
    m = jnp.full(x.shape[:3], level)
    return m.at[:, 3, :].add(1.0)  # one bright row: a crack

  sc = Scorer(
    jax.jit(maps), {}, 1, lambda shape: 0.0, {"pooling": "topk_mad", "topk_fraction": 0.05, "mad_floor": 0.1, "border": 0}
  )
  if shift is not None:
    sc.prior = lambda img, loc: shift
  return sc


def test_a_shifted_score_moves_the_score_not_the_maps():
  images = [np.full((16, 16, 3), 100, np.uint8)]
  plain = compute_maps(_constant_scorer(0.2, None), images, jax.random.PRNGKey(0), batch_size=1)
  sc = _constant_scorer(0.2, -0.75)
  shifted = compute_maps(sc, images, jax.random.PRNGKey(0), batch_size=1)
  assert shifted.scores[0] == pytest.approx(plain.scores[0] - 0.75) and shifted.shifts[0] == pytest.approx(-0.75)
  np.testing.assert_array_equal(shifted.maps[0], plain.maps[0])  # the pixel maps are the teacher's
  assert anomaly.image_score(shifted.maps[0], **anomaly.pooling_of(sc.info)) == pytest.approx(plain.scores[0])


def _root_with_unlabeled(path) -> str:
  from crackjax.data import synthetic

  root = make_root(path, bad=False)
  for i in range(8):
    _png(f"{root}/unlabeled/u{i}.png", synthetic.generate(3, 700 + i, 32, crack=i % 2 == 0)[0])
  return root


@pytest.fixture(scope="module")
def clf_run(tmp_path_factory):
  from configs import ddim_50

  root = _root_with_unlabeled(tmp_path_factory.mktemp("root") / "data")
  c = ddim_50.get_config(f"tiny,data={root}")
  with c.unlocked():
    c.classifier.update(weight=1.0, quantile=0.5, num_steps=4, members=2, rounds=2)
  workdir = str(tmp_path_factory.mktemp("clf"))
  saved, classifier.MIN_PSEUDO_CRACKS = classifier.MIN_PSEUDO_CRACKS, 1
  try:
    out = jobs.train_and_evaluate(c, workdir)
  finally:
    classifier.MIN_PSEUDO_CRACKS = saved
  return c, workdir, out


def test_the_classifier_trains_after_the_teacher_and_shifts_its_scores(clf_run):
  c, workdir, out = clf_run
  info = json.load(open(os.path.join(workdir, "classifier", "classifier_info.json")))
  assert info["n_pseudo_cracks"] >= 1 and info["n_sound"] == 12 and info["logit_mad"] > 0 and "skipped" not in info
  assert info["members"] == 2 and os.path.isdir(os.path.join(workdir, "classifier", "member_1", "checkpoints"))
  assert info["rounds"] == 2 and len(info["round_pseudo_cracks"]) == 2
  assert os.path.isdir(os.path.join(workdir, "classifier", "round_2", "member_1", "checkpoints"))
  assert out["model"]["classifier"] == {"name": "classifier", "weight": 1.0}
  # Without the shift, the same teacher scores its own maps: a different score for at least one photo.
  off = c.copy_and_resolve_references()
  with off.unlocked():
    off.classifier.weight = 0.0
    off.eval.name = "off"
  plain = jobs.evaluate(off, workdir)
  # the maps are the teacher's: the threshold-free pixel metrics agree (the shipped mask follows each verdict)
  threshold_free = lambda r: {k: v for k, v in r["pixel"].items() if k != "mask"}  # noqa: E731
  assert "classifier" not in plain["model"] and threshold_free(plain) == threshold_free(out)
  a, b = (read_scores(os.path.join(workdir, *p, "scores.csv")) for p in ((), ("eval", "off")))
  assert set(a) == set(b) and not np.allclose([a[f][1] for f in a], [b[f][1] for f in a])


def test_a_killed_classifier_training_resumes_and_a_damaged_shard_is_computed_again(clf_run, tmp_path, monkeypatch):
  monkeypatch.setattr(classifier, "MIN_PSEUDO_CRACKS", 1)
  c, workdir, out = clf_run
  w = str(tmp_path / "copy")
  shutil.copytree(workdir, w)
  cdir = os.path.join(w, "classifier")
  steps = sorted(int(s) for s in os.listdir(os.path.join(cdir, "round_2", "member_1", "checkpoints")))
  shutil.rmtree(os.path.join(cdir, "round_2", "member_1", "checkpoints", str(steps[-1])))  # killed before its last checkpoint
  info = json.load(open(os.path.join(cdir, "classifier_info.json")))
  del info["logit_median"]  # and before the shift's statistics were written
  json.dump(info, open(os.path.join(cdir, "classifier_info.json"), "w"))
  (key_dir,) = os.listdir(os.path.join(cdir, "pool_scores"))
  shard = os.path.join(cdir, "pool_scores", key_dir, "shard_0000.npz")
  with open(shard, "wb") as f:
    f.write(b"PK\x03\x04 truncated")
  again = jobs.train_and_evaluate(c, w)
  assert again["image"]["auroc"] == out["image"]["auroc"]
  assert again["image"]["threshold"] == pytest.approx(out["image"]["threshold"])
  assert len(np.load(shard)["scores"]) == c.student.cache_shard_size


def test_an_unfinished_or_mismatched_classifier_is_refused_by_name(clf_run, tmp_path):
  c, workdir, _ = clf_run
  other = c.copy_and_resolve_references()
  with other.unlocked():
    other.classifier.channels = (8, 8)
  with pytest.raises(ValueError, match=r"config.classifier.channels=\[4, 4\], not \[8, 8\].*classifier.name"):
    jobs.evaluate(other, workdir)
  more = c.copy_and_resolve_references()
  with more.unlocked():
    more.classifier.members = 3
  with pytest.raises(ValueError, match=r"2 member\(s\) and 2 round\(s\), not config.classifier.members=3.*--mode=train"):
    jobs.evaluate(more, workdir)
  w = str(tmp_path / "half")
  shutil.copytree(workdir, w)
  info = json.load(open(os.path.join(w, "classifier", "classifier_info.json")))
  del info["logit_mad"]
  json.dump(info, open(os.path.join(w, "classifier", "classifier_info.json"), "w"))
  with pytest.raises(FileNotFoundError, match="did not finish training.*--mode=train"):
    jobs.evaluate(c, w)
  new = c.copy_and_resolve_references()
  with new.unlocked():
    new.classifier.name = "never_trained"
  with pytest.raises(FileNotFoundError, match="no trained model"):
    jobs.evaluate(new, workdir)


def test_a_classifier_with_the_map_as_input_trains_on_the_cached_pool_maps_and_shifts_the_scores(clf_run, tmp_path, monkeypatch):
  monkeypatch.setattr(classifier, "MIN_PSEUDO_CRACKS", 1)
  c, workdir, out = clf_run
  w = str(tmp_path / "copy")
  shutil.copytree(workdir, w)
  mc = c.copy_and_resolve_references()
  with mc.unlocked():
    mc.classifier.update(name="clf_map", input="photo_map", members=1, rounds=1)
  again = jobs.train_and_evaluate(mc, w)
  assert again["model"]["classifier"] == {"name": "clf_map", "weight": 1.0}
  assert again["pixel"] == out["pixel"] and len(os.listdir(os.path.join(w, "teacher_maps"))) == 1  # the student's cache
  prior = classifier.load_prior(mc, w)
  img = np.full((32, 32, 3), 120, np.uint8)
  loc = np.random.default_rng(0).random((32, 32)).astype(np.float32)
  assert prior(img, loc) != prior(img, loc[::-1])  # the map counts
  with pytest.raises(ValueError, match="input='photo_map'"):
    prior(img)
  with pytest.raises(ValueError, match=r"config.classifier.input='photo_map', not 'map'"):
    mc.classifier.input = "map"
    jobs.evaluate(mc, w)


def test_without_an_unlabeled_folder_the_teachers_score_stays_alone(tmp_path, caplog):
  from configs import ddim_50

  root = make_root(tmp_path / "data", bad=False)
  c = ddim_50.get_config(f"tiny,data={root}")
  with c.unlocked():
    c.classifier.weight = 1.0
  out = jobs.train_and_evaluate(c, str(tmp_path / "w"))
  assert "classifier" not in out["model"]
  assert "no unlabeled/ folder" in json.load(open(tmp_path / "w" / "classifier" / "classifier_info.json"))["skipped"]


def test_predict_shifts_each_score_by_the_classifier(clf_run):
  from crackjax import predict as predict_lib

  c, workdir, _ = clf_run
  runs, verdicts = {}, {}
  for name, weight in (("on", 1.0), ("off", 0.0)):
    pc = c.copy_and_resolve_references()
    with pc.unlocked():
      pc.predict.update(input=os.path.join(c.data.root, "test"), name=name, overlays="none")
      pc.classifier.weight = weight
    rows = list(csv.DictReader(open(jobs.predict(pc, workdir))))
    runs[name] = {r["file"]: float(r["score"]) for r in rows if not r["error"]}
    verdicts[name] = {r["file"]: r["verdict"] for r in rows if not r["error"]}
  prior = classifier.load_prior(c, workdir)
  assert set(runs["on"]) == set(runs["off"]) and len(runs["on"]) == 8
  from PIL import Image

  for f, s in runs["on"].items():
    b = prior(predict_lib._read(f, c.data.resize, 10**8))
    assert s - runs["off"][f] == pytest.approx(b, abs=1e-4)
    # The red mask follows the verdict, which the shift moves; the pixels it paints are the teacher's map's.
    on, off = (
      np.asarray(
        Image.open(os.path.join(workdir, "predict", n, "masks", predict_lib.output_name(f, os.path.join(c.data.root, "test"))))
      )[..., 3]
      > 0
      for n in ("on", "off")
    )
    for red, n in ((on, "on"), (off, "off")):
      assert verdicts[n][f] == "crack" or not red.any()
    if verdicts["on"][f] == verdicts["off"][f] == "crack":
      assert (on == off).all()
