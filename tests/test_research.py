"""The research plan's tools on tiny configs: the sampler x steps sweep, failure kinds, the toy memorization DDPM,
and students fed by a DDPM or DDIM teacher."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crackjax import anomaly, failures, jobs, samplers, streams, synth, toy
from crackjax import config as config_lib
from crackjax.data import synthetic
from tests.test_samplers import SCHED, gaussian_denoiser


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
  from configs import ddim_50

  workdir = str(tmp_path_factory.mktemp("teacher"))
  config = ddim_50.get_config("tiny")
  jobs.train_and_evaluate(config, workdir)
  return config, workdir


@pytest.mark.parametrize("variant", ["ddpm", "ddim_eta0", "ddim_eta1"])
def test_one_step_of_any_sampler_is_the_x0_estimate(key, variant):
  # With one step the next state is the clean image: DDPM's posterior variance and DDIM's sigma are both 0 there.
  kind, eta = samplers.VARIANTS[variant]
  x_t = jax.random.normal(key, (2, 8, 8, 3))
  eps_fn = gaussian_denoiser(0.0, 0.5)
  got = samplers.sample(eps_fn, SCHED, x_t, key, sampler=kind, eta=eta, t_start=120, steps=1, clip_x0=False)
  ab = SCHED.alpha_bar[120]
  x0_hat = (x_t - np.sqrt(1 - ab) * eps_fn(x_t, jnp.full((2,), 120))) / np.sqrt(ab)
  np.testing.assert_allclose(got, x0_hat, atol=1e-5)


def test_ddim_eta1_is_the_ddpm_posterior(key):
  # Song et al.: eta = 1 gives DDPM's posterior mean and variance over any stride, so with the same noise the two
  # samplers walk the same path (the sweep's ddpm and ddim_eta1 rows agree for this reason).
  x_t = jax.random.normal(key, (2, 8, 8, 3))
  eps_fn = gaussian_denoiser(0.3, 0.5)
  kw = dict(t_start=400, steps=7, clip_x0=False)
  ddpm = samplers.sample(eps_fn, SCHED, x_t, key, sampler="ddpm", **kw)
  ddim1 = samplers.sample(eps_fn, SCHED, x_t, key, sampler="ddim", eta=1.0, **kw)
  ddim0 = samplers.sample(eps_fn, SCHED, x_t, key, sampler="ddim", eta=0.0, **kw)
  np.testing.assert_allclose(ddpm, ddim1, atol=1e-4)
  assert float(jnp.abs(ddpm - ddim0).max()) > 1e-2


def test_sweep_rows_skip_impossible_steps_and_resume(teacher, monkeypatch):
  from configs import sweep_steps

  _, workdir = teacher
  config = sweep_steps.get_config("tiny")
  with config.unlocked():
    config.sweep.steps = (1, 2, 50)  # t_start 20 allows at most 21 steps
  rows = jobs.sweep(config, workdir)
  assert [(r["sampler"], r["steps"]) for r in rows] == [(v, s) for v in ("ddpm", "ddim_eta0", "ddim_eta1") for s in (1, 2)]
  by = {(r["sampler"], r["steps"]): r for r in rows}
  # Same noise for every row: one step is the same x0 estimate for every sampler, so the same scores.
  assert by["ddpm", 1]["image_auroc"] == by["ddim_eta0", 1]["image_auroc"] == by["ddim_eta1", 1]["image_auroc"]
  assert all(r["n_images"] == 12 and r["pixel_auroc"] is not None for r in rows)
  out = os.path.join(workdir, "sweep", "steps")
  for name in ("sweep.json", "sweep.csv", "auroc_vs_steps.png", "pixel_auroc_vs_steps.png", "auroc_vs_seconds.png"):
    assert os.path.exists(os.path.join(out, name)), name

  # A killed sweep: drop the last two rows; the rerun computes exactly those.
  with open(os.path.join(out, "sweep.json")) as f:
    saved = json.load(f)
  saved["rows"] = saved["rows"][:-2]
  with open(os.path.join(out, "sweep.json"), "w") as f:
    json.dump(saved, f)
  calls = []
  from crackjax import sweep as sweep_lib

  real = sweep_lib.compute_maps
  monkeypatch.setattr(sweep_lib, "compute_maps", lambda *a, **k: calls.append(k["desc"]) or real(*a, **k))
  again = jobs.sweep(config, workdir)
  assert len(calls) == 2 and all(c.startswith("ddim_eta1") for c in calls)
  assert [r["image_auroc"] for r in again] == [r["image_auroc"] for r in rows]


def test_sweep_pixel_metrics_are_the_evaluations(teacher):
  """A sweep row's pixel metrics come from the localization map that evaluate and predict draw (config.anomaly's
  localization settings), not from the scorer's defaults."""
  from configs import sweep_steps
  from crackjax import metrics, report
  from crackjax.data import builders, pipeline
  from crackjax.scorer import compute_maps, tiling

  _, workdir = teacher
  config = sweep_steps.get_config("tiny")
  with config.unlocked():
    config.sweep.update(name="localized", steps=(1,), samplers=("ddim_eta0",))
    config.anomaly.localization_darkness, config.anomaly.localization_sigma = 0.7, 2.0
  (row,) = jobs.sweep(config, workdir)
  scorer = jobs.trained_scorer(config_lib.with_healing(config, "ddim_eta0", 1), workdir)
  builder = builders.builder_for(config, workdir, config.data.root)
  split = pipeline.load_split(builder, "test", resize=config.data.resize, max_images=config.sweep.max_images)
  key = streams.key(config.seed, "sweep")  # the sweep's key
  res = compute_maps(scorer, split.images, key, batch_size=config.eval.batch_size, tile=tiling(config))
  assert row["pixel_auroc"] == pytest.approx(report.split_pixel_metrics(split, res.maps)["auroc"], abs=1e-9)
  assert row["image_auroc"] == pytest.approx(metrics.auroc(res.scores, split.labels), abs=1e-9)


def test_sweep_config_errors_name_the_field():
  from configs import sweep_steps
  from crackjax.config import validate

  for field, value in (("steps", ()), ("steps", (0, 2)), ("samplers", ("euler",))):
    config = sweep_steps.get_config("tiny")
    with config.unlocked():
      config.sweep[field] = value
    with pytest.raises(ValueError, match=f"sweep.{field}"):
      validate(config)
  assert sweep_steps.get_config("cpu").sweep.steps == (1, 2, 5, 10, 20)


def _stroke(width: int, size: int = 40, inside: int = 100, outside: int = 200):
  img = np.full((size, size, 3), outside, np.uint8)
  mask = np.zeros((size, size), np.uint8)
  top = size // 2 - width // 2
  mask[top : top + width, 5:-5] = 1
  img[mask > 0] = inside
  return img, mask


@pytest.mark.parametrize("width", [1, 3, 5])
def test_crack_geometry_measures_width_and_contrast(width):
  img, mask = _stroke(width)
  w, contrast = failures.crack_geometry(img, mask)
  assert w == pytest.approx(width)
  assert contrast == pytest.approx(100 / 255, abs=1e-4)  # grey: luminance is the grey level


def test_distractor_replay_matches_the_generated_image():
  kinds = set()
  for i in range(30):
    img, mask = synthetic.generate(0, i, 32, crack=i % 3 == 0)
    img2, mask2, kind = synthetic.generate_with_distractor(0, i, 32, crack=i % 3 == 0)
    np.testing.assert_array_equal(img, img2)
    np.testing.assert_array_equal(mask, mask2)
    kinds.add(kind)
  assert kinds == {"", *synth.DISTRACTORS}
  assert synthetic.generate_with_distractor(0, 1, 32, crack=False, distractor_prob=0.0)[2] == ""


def test_failures_table_agrees_with_the_scores(teacher, tmp_path):
  """Home kinds from the scores; a domain-shift root with masks gets its own thin and faint thirds, failing at the
  home threshold."""
  from tests.test_data import make_root

  config, workdir = teacher
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.eval.root, c.eval.name = make_root(tmp_path / "other", with_val=False, bad=False), "other"
  jobs.evaluate(c, workdir)
  out = jobs.failures(config, workdir)
  rows = {r["kind"]: r for r in out["rows"]}
  with open(os.path.join(workdir, "scores.csv")) as f:
    lines = [line.strip().split(",") for line in f][1:]
  th = out["threshold"]
  misses = sum(1 for _, y, s, _ in lines if y == "1" and float(s) < th)
  alarms = sum(1 for _, y, s, _ in lines if y == "0" and float(s) >= th)
  assert rows["all cracks"]["failures"] == misses and rows["all good"]["failures"] == alarms
  # The distractor kinds partition the good images that carry one (replayed from the synthetic seeds).
  n_dist = sum(rows[k]["images"] for k in ("stains", "water marks", "shadows"))
  good_names = [fn for fn, y, _, _ in lines if y == "0"]
  assert n_dist == sum(1 for d in failures.synthetic_distractors(config, good_names) if d)
  assert {"thin cracks", "faint cracks"} <= set(rows)
  with open(os.path.join(workdir, "eval", "other", "scores.csv")) as f:
    other = {row[0]: float(row[2]) for row in csv.reader(f) if row[1] == "1"}
  masked = {k: v for k, v in other.items() if "nomask" not in k}  # c0-c2 have masks; nomask.png has none
  assert rows["domain shift -> other: cracks"]["failures"] == sum(s < th for s in other.values())
  # A gallery rescores its images with the evaluation's own noise, so it shows the scores the table counted.
  scored = failures._load_scored(config, workdir, os.path.join(workdir, "eval", "other"), c.eval.root, "other")
  idx = [len(scored.scores) - 1, 0]  # out of order, and not the ids 0, 1
  _, res = failures.rescore(jobs.trained_scorer(config, workdir), config, scored, idx)
  np.testing.assert_allclose(res.scores, scored.scores[idx], rtol=1e-5)
  for kind in ("thin cracks", "faint cracks"):
    r = rows[f"domain shift -> other: {kind}"]
    assert 1 <= r["images"] <= len(masked) and r["failures"] <= sum(s < th for s in masked.values())
    assert r["note"].endswith("trained and thresholded on synthetic")
  for r in out["rows"]:
    assert (r["gallery"] is None) == (r["failures"] == 0)
    if r["gallery"]:
      assert os.path.exists(r["gallery"])
  assert os.path.exists(os.path.join(workdir, "failures", "failures.md"))


def test_toy_images_are_skeletons_or_heatmaps():
  sk = toy.crack_image(0, 3, 32, "skeleton")
  assert set(np.unique(sk)) <= {0.0, 1.0} and sk.sum() >= 5
  w, _ = failures.crack_geometry(np.repeat((sk[..., None] * 255).astype(np.uint8), 3, -1), sk)
  assert w == pytest.approx(1.0)
  hm = toy.crack_image(0, 3, 32, "heatmap")
  assert hm.max() == pytest.approx(1.0) and hm.min() >= 0 and (0 < hm).sum() > (sk > 0).sum()
  with pytest.raises(ValueError, match="toy.target"):
    toy.crack_image(0, 3, 32, "blob")


def test_nearest_neighbour_distance_finds_copies():
  rng = np.random.default_rng(0)
  train, held = rng.random((20, 16, 16)), rng.random((20, 16, 16))
  d, idx = toy.nearest(train[[4, 7]], train)
  np.testing.assert_allclose(d, 0.0, atol=1e-6)
  assert list(idx) == [4, 7]
  m = toy.memorization(train[:5], train, held)
  assert (m["ratio"] < 1e-3).all()  # copies of training images: ratio 0
  m = toy.memorization(rng.random((10, 16, 16)), train, held)
  assert 0.5 < np.median(m["ratio"]) < 2.0  # fresh draws from the same distribution: ratio ~ 1
  # A larger held-out set is cut to the training set's size: the nearest of more images is nearer by chance alone.
  m = toy.memorization(rng.random((10, 16, 16)), train, rng.random((60, 16, 16)))
  assert m["nearest_heldout"].max() < len(train)
  with pytest.raises(ValueError, match="the probe needs as many"):
    toy.memorization(train[:2], train, held[:5])


def test_toy_job_writes_pictures_and_resumes(tmp_path):
  from configs import toy_skeleton

  config = toy_skeleton.get_config("tiny")
  out = jobs.toy(config, str(tmp_path))
  for name in ("forward.png", "reverse.png", "samples.png", "nearest.png", "memorization.png", "toy.json"):
    assert os.path.exists(tmp_path / name), name
  assert out["generated"]["median_d_train"] > 0 and 0 <= out["generated"]["share_copies"] <= 1
  again = jobs.toy(config, str(tmp_path))  # the checkpoint is reused, the numbers repeat
  assert again["generated"] == out["generated"]


def test_student_can_ask_its_teacher_for_other_healing(teacher):
  from configs import student_single_step

  _, workdir = teacher
  config = student_single_step.get_config("tiny")
  with config.unlocked():
    config.student.teacher_sampler, config.student.teacher_heal_steps = "ddpm", 3
  tc = config_lib.teacher_config(config, workdir)
  assert (tc.sampler.kind, tc.sampler.eta, tc.anomaly.heal_steps) == ("ddpm", 0.0, 3)
  with config.unlocked():
    config.student.teacher_heal_steps = 500  # t_start is 20
  with pytest.raises(ValueError, match="anomaly.heal_steps"):
    config_lib.teacher_config(config, workdir)


def test_a_teacher_saved_before_averaged_healing_existed_loads_as_it_ran(teacher, tmp_path):
  from configs import student_single_step

  _, workdir = teacher
  saved = json.load(open(os.path.join(workdir, "config.json")))
  for field in ("average", "antithetic", "mad_floor", "border"):  # a config.json from before these fields existed
    del saved["anomaly"][field]
  saved["anomaly"]["num_draws"] = 1
  with open(tmp_path / "config.json", "w") as f:
    json.dump(saved, f)
  config = student_single_step.get_config("tiny")
  with config.unlocked():
    config.anomaly.average, config.anomaly.antithetic, config.anomaly.num_draws = "healing", True, 2
    config.anomaly.mad_floor, config.anomaly.border = 0.5, 3
  tc = config_lib.teacher_config(config, str(tmp_path))  # antithetic with one draw would be refused
  assert (tc.anomaly.average, tc.anomaly.antithetic, tc.anomaly.num_draws) == ("residual", False, 1)
  assert (tc.anomaly.mad_floor, tc.anomaly.border) == (anomaly.MAD_FLOOR, 0)  # the whole map, the old floor


def test_evaluating_in_the_workdir_records_the_healing_the_metrics_were_made_with(teacher, tmp_path):
  import shutil

  from configs import student_single_step

  config, workdir = teacher
  copy = str(tmp_path / "teacher")
  shutil.copytree(workdir, copy)
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.anomaly.t_start, c.anomaly.topk_fraction = config.anomaly.t_start // 2, 0.1
    c.train.num_steps = config.train.num_steps + 7  # not a healing setting: the record of the training stays
  out = jobs.evaluate(c, copy)
  saved = json.load(open(os.path.join(copy, "config.json")))
  assert out["model"]["t_start"] == saved["anomaly"]["t_start"] == config.anomaly.t_start // 2
  assert saved["anomaly"]["topk_fraction"] == 0.1 and saved["train"]["num_steps"] == config.train.num_steps
  tc = config_lib.teacher_config(student_single_step.get_config("tiny"), copy)  # the student distils that teacher
  assert (tc.anomaly.t_start, tc.anomaly.topk_fraction) == (config.anomaly.t_start // 2, 0.1)


def test_the_benchmark_reads_each_rate_against_the_machines_measured_peak(tmp_path, monkeypatch, tiny_config):
  """--mode=benchmark times a matmul and a convolution as the machine's peak and gives every achieved rate as a share
  of it: with the peak held at 100 GFLOP/s, the model's share is its GFLOP/s itself."""
  from crackjax import benchmark

  peak = benchmark.machine_peak(repeats=1)
  assert peak["matmul_gflops_per_second"] > 0 and peak["conv_gflops_per_second"] > 0
  monkeypatch.setattr(benchmark, "machine_peak", lambda: {"matmul_gflops_per_second": 100.0, "conv_gflops_per_second": 50.0})
  monkeypatch.setattr(benchmark, "HEAL_STEPS", (1, 2))  # the rows' arithmetic, not their count, is under test
  monkeypatch.setattr(benchmark, "LOOP_INTERVAL", 5)
  c = tiny_config.copy_and_resolve_references()
  with c.unlocked():
    c.benchmark.predict = False
  out = benchmark.benchmark(c, str(tmp_path))
  m = out["model"]
  text = benchmark.format_report(out)
  rate = m["gflops_per_image"] * m["images_per_second"]
  assert f"{rate:.1f} GFLOP/s, {rate:.0f}% of the matmul peak" in text
  assert f"{out['train_gflops_per_second']:.0f}% of the matmul peak" in text and "peak    : matmul 100.0 GFLOP/s" in text
  assert json.load(open(tmp_path / "benchmark.json"))["peak"]["conv_gflops_per_second"] == 50.0
  # the loop as main.py trains, read against the bare step; cores busy and the peak memory
  assert (
    out["loop_steps_per_second"] > 0
    and f"{100 * out['loop_steps_per_second'] / out['train_steps_per_second']:.0f}% of the bare step" in text
  )
  assert "cores busy" in text and out["peak_memory_gib"] > 0.1


def test_a_healer_in_place_of_diffusion_keeps_the_rest_of_the_map(tiny_config, key):
  """benchmarks/what_healing_adds.py's rows: a healing that returns the input leaves a zero residual, so the map is
  zero without a darkness term and exactly the darkness term with one; no UNet parameters are needed."""
  from crackjax import teacher

  x = jax.random.uniform(key, (2, 32, 32, 3), minval=-1, maxval=1)
  ids = jnp.arange(2, dtype=jnp.int32)
  same = ("the input itself", lambda x0: x0, 0.0)
  sc = teacher.scorer_from_params(tiny_config, {}, same)
  assert sc.info["healer"] == "the input itself" and float(jnp.abs(sc.maps({}, x, key, ids)).max()) == 0.0
  c = tiny_config.copy_and_resolve_references()
  with c.unlocked():
    c.anomaly.darkness, c.anomaly.pyramid = 0.5, 1
  dark = teacher.scorer_from_params(c, {}, same).maps({}, x, key, ids)
  want = jnp.maximum(0.0, 0.5 * anomaly.darkness_term(x, teacher.heal_config(c)))
  np.testing.assert_allclose(np.asarray(dark), np.asarray(want), atol=1e-6)


def test_memorization_probe_known_answers(teacher, key):
  """toy.denoising_losses and toy.membership (benchmarks/teacher_memorization.py's probe): a model predicting zero
  noise has loss E[eps^2] = 1; the same photos get the same draws in any call (so two identical sets read 0.5);
  membership AUROC is 1 when every held-out loss is larger, 0 when every one is smaller."""
  from crackjax import train as train_lib

  config, workdir = teacher
  params = train_lib.load_trained(config, workdir).ema_params
  imgs = [synthetic.generate(0, i, 32, crack=False)[0] for i in range(5)]
  zero = jax.tree.map(jnp.zeros_like, params)
  flat = toy.denoising_losses(config, zero, imgs, [10, 50], 2, key, 16)
  assert flat.shape == (2, 5) and np.all(np.abs(flat - 1.0) < 0.15)  # 2 x 768 standard normals per photo
  a = toy.denoising_losses(config, params, imgs, [10, 50], 2, key, 16)
  np.testing.assert_array_equal(a, toy.denoising_losses(config, params, imgs, [10, 50], 2, key, 16))
  assert np.all(a > 0) and not np.allclose(a, flat)
  rng = np.random.default_rng(0)
  same = toy.membership(a[0], a[0], rng, boots=50)
  assert same["auroc"] == 0.5
  lo, hi = np.array([0.1, 0.2, 0.3]), np.array([0.4, 0.5, 0.6])
  assert toy.membership(lo, hi, rng, boots=50)["auroc"] == 1.0 and toy.membership(lo, hi, rng, boots=50)["ci95"] == [1.0, 1.0]
  assert toy.membership(hi, lo, rng, boots=50)["auroc"] == 0.0
  with pytest.raises(ValueError, match="smaller than the probe's crop 64"):
    toy.denoising_losses(config, params, imgs, [10], 1, key, 64)
