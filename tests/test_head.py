"""Synthetic anomalies and the discriminative head: known answers for the generators and the loss, and the head's
training end to end on tiny settings (cache, resume, a damaged shard, a mismatched head)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from crackjax import head, jobs, synth
from tests.test_data import make_root


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
  # The mask's area grows with the width (hairlines cover less than a quarter of a pixel along most of them).
  if width >= 3:
    assert mask.mean() > 0.05


def test_a_cracks_relief_is_a_bright_line_only_beside_it():
  for seed in range(6):
    out, mask = synth.draw_fine_crack(np.random.default_rng(seed), _surface(), width=(3, 3), depth=(0.6, 0.6), p_relief=1.0)
    lum = out.mean(-1)
    dist = ndimage.distance_transform_edt(lum >= 0.6 - 1e-4)  # pixels from the darkened crack
    assert mask.any() and (dist[lum > 0.6 + 1e-3] <= 4).all()  # the lip lies beside the crack, nowhere else
    assert out.max() > 0.6 + 0.01 and out.max() <= 0.6 * 1.35 + 1e-6  # the lip: brighter, by at most 35%


def test_a_subpixel_hairline_is_faint_and_a_wide_crack_dark():
  rng = np.random.default_rng(1)
  thin, _ = synth.draw_fine_crack(rng, _surface(), width=(0.4, 0.4), depth=(0.6, 0.6))
  wide, _ = synth.draw_fine_crack(np.random.default_rng(1), _surface(), width=(6, 6), depth=(0.6, 0.6))
  assert 0.6 - thin.min() < 0.5 * (0.6 - wide.min())


def test_gaps_are_wider_than_the_crop():
  out, mask = synth.draw_fine_crack(np.random.default_rng(2), _surface(32, 32), p_gap=1.0)
  assert mask.mean() > 0.4


def test_perlin_masks_cover_half_the_image_at_threshold_zero_on_average():
  """Perlin noise is symmetric about 0: P(noise > 0) = 1/2, so masks at threshold 0 cover half the image on
  average; DRAEM's threshold 0.5 covers less."""
  rng = np.random.default_rng(3)
  cover0 = np.mean([(synth.perlin(rng, 32, 32, (4, 4)) > 0).mean() for _ in range(300)])
  assert cover0 == pytest.approx(0.5, abs=0.03)
  cover5 = np.mean([synth.perlin_mask(rng, 32, 32).mean() for _ in range(300)])
  assert 0.02 < cover5 < 0.3


def test_shuffled_texture_is_a_permutation_of_the_images_own_blocks():
  rng = np.random.default_rng(4)
  img = rng.random((32, 24, 3)).astype(np.float32)
  out = synth.shuffled_texture(rng, img, block=8)
  blocks = lambda a: sorted(a[i : i + 8, j : j + 8].tobytes() for i in range(0, 32, 8) for j in range(0, 24, 8))  # noqa: E731
  assert blocks(out) == blocks(img) and not np.array_equal(out, img)


def test_draem_blend_known_answer():
  img, a = _surface(4, 4, 0.6), _surface(4, 4, 0.2)
  m = np.zeros((4, 4), np.uint8)
  m[1:3, 1:3] = 1
  out = synth.blend(img, a, m, 0.25)
  np.testing.assert_allclose(out[0, 0], 0.6)
  np.testing.assert_allclose(out[1, 1], 0.75 * 0.2 + 0.25 * 0.6)


def test_hard_negatives_change_the_image_and_stay_normal():
  rng = np.random.default_rng(5)
  img = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32) * 0.2 + 0.4
  kinds = set()
  for _ in range(60):
    out, mask = synth.corrupt(rng, img, synth.Mix(p_crack=0.0, p_texture=0.0, p_negative=1.0))
    assert not mask.any() and not np.allclose(out, img)
  for _ in range(40):
    kinds.add(synth.draw_negative(rng, img)[1])
  assert kinds == set(synth.NEGATIVES)


def test_focal_loss_known_answers():
  logits, target = jnp.zeros((1, 4, 4)), jnp.ones((1, 4, 4))
  np.testing.assert_allclose(head.focal_loss(logits, target, 0.0), np.log(2), rtol=1e-6)
  np.testing.assert_allclose(head.focal_loss(logits, target, 2.0), 0.25 * np.log(2), rtol=1e-6)
  confident = jnp.full((1, 4, 4), 6.0)
  assert float(head.focal_loss(confident, target, 2.0)) < 1e-4 * float(head.focal_loss(confident, target, 0.0))


def test_head_net_is_fully_convolutional(key):
  cfg = head.HeadConfig(inputs=("image", "healed", "residual"), channels=4, levels=3)
  net = head.HeadNet(cfg)
  params = net.init(key, jnp.zeros((1, 16, 16, cfg.in_channels)))["params"]
  assert net.apply({"params": params}, jnp.zeros((2, 24, 40, 7))).shape == (2, 24, 40)
  x = jnp.zeros((1, 8, 8, 3))
  stacked = head.stack_inputs(cfg, x, x + 0.5, None)
  np.testing.assert_allclose(stacked[..., 6], 1.0, atol=1e-6)  # 2 x luminance of (healed - image)


@pytest.fixture(scope="module")
def head_run(tmp_path_factory):
  from configs import ddim_50

  root = make_root(tmp_path_factory.mktemp("root") / "data", bad=False)
  c = ddim_50.get_config(f"tiny,data={root}")
  with c.unlocked():
    c.anomaly.score = "head"
  workdir = str(tmp_path_factory.mktemp("head"))
  return c, workdir, jobs.train_and_evaluate(c, workdir)


def test_the_head_trains_after_the_teacher_and_scores_its_maps(head_run):
  c, workdir, out = head_run
  assert out["model"]["score"] == "head" and out["model"]["head"]["inputs"] == ["image", "healed", "residual"]
  info = json.load(open(os.path.join(workdir, "head", "head_info.json")))
  assert info["head"]["inputs"] == ["image", "healed", "residual"] and info["residual_scale"] > 0
  (key_dir,) = os.listdir(os.path.join(workdir, "head", "train_set"))
  assert os.listdir(os.path.join(workdir, "head", "train_set", key_dir)) == ["shard_0000.npz"]
  th = out["image"]["threshold"]
  assert 0 <= th <= 1  # a smoothed probability map pooled by top-k


def test_a_killed_head_training_resumes_and_a_damaged_shard_is_made_again(head_run, tmp_path):
  import shutil

  c, workdir, out = head_run
  w = str(tmp_path / "copy")
  shutil.copytree(workdir, w)
  steps = sorted(int(s) for s in os.listdir(os.path.join(w, "head", "checkpoints")))
  shutil.rmtree(os.path.join(w, "head", "checkpoints", str(steps[-1])))  # killed before its last checkpoint
  (key_dir,) = os.listdir(os.path.join(w, "head", "train_set"))
  shard = os.path.join(w, "head", "train_set", key_dir, "shard_0000.npz")
  with open(shard, "wb") as f:
    f.write(b"PK\x03\x04 truncated")
  again = jobs.train_and_evaluate(c, w)
  # The resumed head ends where the uninterrupted one did: the same scores, threshold and metrics.
  assert again["image"]["auroc"] == out["image"]["auroc"]
  assert again["image"]["threshold"] == pytest.approx(out["image"]["threshold"])
  assert np.load(shard)["x"].shape[0] == c.head.train_set_size


def test_a_head_config_that_does_not_match_its_checkpoint_is_refused(head_run):
  c, workdir, _ = head_run
  other = c.copy_and_resolve_references()
  with other.unlocked():
    other.head.inputs = ("image",)
  with pytest.raises(ValueError, match=r"config.head.inputs=\['image', 'healed', 'residual'\], not \['image'\].*head.name"):
    jobs.evaluate(other, workdir)


def test_a_head_applies_to_another_root_of_another_image_size(head_run, tmp_path):
  from crackjax.data import synthetic
  from tests.test_data import _png

  c, workdir, _ = head_run
  other = tmp_path / "big"
  for split, n in (("train/good", 4), ("test/good", 2), ("test/crack", 2)):
    for i in range(n):
      _png(f"{other}/{split}/{i}.png", synthetic.generate(9, i + 10 * len(split), 48, crack="crack" in split)[0])
  e = c.copy_and_resolve_references()
  with e.unlocked():
    e.eval.root = str(other)
  res = jobs.evaluate(e, workdir)
  assert res["data"]["n_test"] == 4 and res["image"]["threshold_source"].startswith("val_good_p")


def _darkness_auroc(hard: bool, n: int = 40) -> float:
  """The no-learning floor's image AUROC on n good + n cracked synthetic images (no training: seconds)."""
  from configs import darkness
  from crackjax import kinds, metrics
  from crackjax.data import synthetic

  scorer = kinds.get("darkness").init_scorer(darkness.get_config())
  labels = np.array([0, 1] * n)
  imgs = np.stack([synthetic.generate(5, 2 * 10**6 + i, 64, crack=bool(y), hard=hard)[0] for i, y in enumerate(labels)])
  x = jnp.asarray(imgs, jnp.float32) / 127.5 - 1.0
  maps = np.asarray(scorer.maps(scorer.params, x, None, jnp.arange(len(x))))
  return metrics.auroc(np.array([scorer.score(m) for m in maps]), labels)


def test_the_hard_synthetic_setting_is_not_saturated():
  """The hard set (faint hairlines; pits, joints, rough patches among the good images) is much harder than the
  default one for the same score: the no-learning floor drops from about 0.89 to about 0.64 (seed 5, 40 + 40)."""
  easy, hard = _darkness_auroc(False), _darkness_auroc(True)
  assert easy > 0.8 and hard < easy - 0.15, (easy, hard)


def test_the_synthetic_cracks_folder_cracks_odd_val_photos_with_their_masks_and_keeps_the_rest(tmp_path):
  """benchmarks/synthetic_cracks_folder.py: from ROOT/val/good only, the even-numbered photos stay as they were
  (test/good and train/good), the odd-numbered ones get a crack that darkens them under its mask, whose file is
  where the folder builder looks; a root without val/good is a one-line error."""
  from PIL import Image

  from benchmarks import synthetic_cracks_folder as scf
  from crackjax.data import decode

  root = make_root(tmp_path / "root", bad=False)  # val/good: v0, v1, v2
  out = str(tmp_path / "syn")
  assert scf.main([root, out, "--max_width=6", "--p_gap=0"]) == {"good": 2, "crack": 1}
  assert sorted(os.listdir(f"{out}/test/good")) == sorted(os.listdir(f"{out}/train/good")) == ["v0.png", "v2.png"]
  for stem in ("v0", "v2"):
    np.testing.assert_array_equal(
      decode.read_image(f"{out}/test/good/{stem}.png"), decode.read_image(f"{root}/val/good/{stem}.png")
    )
  assert os.listdir(f"{out}/test/crack") == ["v1.png"] and os.listdir(f"{out}/ground_truth/crack") == ["v1_mask.png"]
  before = decode.read_image(f"{root}/val/good/v1.png").astype(np.float64).mean(-1)
  after = decode.read_image(f"{out}/test/crack/v1.png").astype(np.float64).mean(-1)
  mask = np.asarray(Image.open(f"{out}/ground_truth/crack/v1_mask.png")) > 127
  assert mask.any() and (after[mask] - before[mask]).mean() < -5  # darker under the mask, in grey levels
  with pytest.raises(SystemExit, match="no val/good folder"):
    scf.main([str(tmp_path / "syn"), str(tmp_path / "again")])
  neg = str(tmp_path / "neg")  # --p_negative=1: every photo gets a hard negative, the cracks and masks stay the same
  assert scf.main([root, neg, "--max_width=6", "--p_gap=0", "--p_negative=1"]) == {"good": 2, "crack": 1}
  for stem in ("v0", "v2"):
    assert (
      np.abs(
        decode.read_image(f"{neg}/test/good/{stem}.png").astype(int) - decode.read_image(f"{out}/test/good/{stem}.png")
      ).max()
      > 5
    )
  np.testing.assert_array_equal(
    decode.read_image(f"{neg}/ground_truth/crack/v1_mask.png"), decode.read_image(f"{out}/ground_truth/crack/v1_mask.png")
  )


def test_the_synthetic_cracks_folder_takes_a_slice_of_another_normal_split(tmp_path):
  """--source=train/good --start --count: exactly those photos (sorted by name), good on even global index, cracked
  on odd; two disjoint slices share no photo; --walk=persistent draws another crack on the same photos; a slice past
  the end or a negative count is a one-line error."""
  from benchmarks import synthetic_cracks_folder as scf
  from crackjax.data import decode

  root = make_root(tmp_path / "root", bad=False)  # train/good: 000 .. 011
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  args = ["--source=train/good", "--max_width=6", "--p_gap=0"]
  assert scf.main([root, a, *args, "--start=3", "--count=4"]) == {"good": 2, "crack": 2}
  assert sorted(os.listdir(f"{a}/test/good")) == ["004.png", "006.png"]
  assert sorted(os.listdir(f"{a}/test/crack")) == ["003.png", "005.png"]
  scf.main([root, b, *args, "--start=7"])  # to the end
  photos = lambda d: set(os.listdir(f"{d}/test/good")) | set(os.listdir(f"{d}/test/crack"))  # noqa: E731
  assert photos(b) == {f"{i:03d}.png" for i in range(7, 12)} and not photos(a) & photos(b)
  p = str(tmp_path / "p")  # the persistent walk: the same good photos, another crack
  scf.main([root, p, *args, "--start=3", "--count=4", "--walk=persistent"])
  assert os.listdir(f"{p}/test/good") == os.listdir(f"{a}/test/good")
  assert not np.array_equal(decode.read_image(f"{p}/test/crack/003.png"), decode.read_image(f"{a}/test/crack/003.png"))
  with pytest.raises(SystemExit, match="needs at least 2 images from photo 11 on"):
    scf.main([root, str(tmp_path / "c"), *args, "--start=11"])
  with pytest.raises(SystemExit, match="--count must be >= 0"):
    scf.main([root, str(tmp_path / "d"), *args, "--count=-1"])


def test_the_persistent_crack_walk_keeps_its_course_across_a_photo():
  """synth._fine_walk(persistent=True): over 300 px the straight distance from start to end is at least 0.8 of the
  path's length on every one of 20 seeds (a crack crosses the surface); the drifting walk, built for 32 px crops,
  curls (its median below 0.6). Branchless walks, so the last path is the whole crack."""
  from crackjax import synth

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
