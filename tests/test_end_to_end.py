"""The jobs main.py runs, on tiny configs: train-then-evaluate, rerun, evaluate elsewhere, predict, bad input."""

import csv
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from crackjax import jobs
from crackjax import metrics as metrics_lib
from crackjax import train as train_lib
from crackjax.errors import UserError
from crackjax.scorer import Pooling, count_params
from tests.conftest import SHARED_DATA
from tests.test_data import make_root

DESIGN_KEYS = {
  "image": {
    "auroc",
    "ap",
    "f1_max",
    "threshold_f1_max",
    "threshold",
    "threshold_source",
    "f1",
    "precision",
    "recall",
    "miss_rate",
    "false_alarm_rate",
    "confusion",
    "n_good",
    "n_crack",
  },
  "pixel": {"auroc", "aupro", "ap", "f1_max"},
  "speed": {"images_per_second", "seconds_per_image", "gflops_per_image", "device"},
  "model": {"kind", "sampler", "num_steps", "t_start", "params"},
  "data": {"root", "n_train", "skipped_files"},
}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from configs import ddim_50

  workdir = str(tmp_path_factory.mktemp("run"))
  config = ddim_50.get_config("tiny")
  metrics = jobs.train_and_evaluate(config, workdir)
  return config, workdir, metrics


def test_train_and_evaluate_writes_the_design_outputs(trained):
  config, workdir, metrics = trained
  with open(os.path.join(workdir, "metrics.json")) as f:
    on_disk = json.load(f)
  for section, keys in DESIGN_KEYS.items():
    assert keys <= set(on_disk[section]), (section, keys - set(on_disk[section]))
  assert on_disk["image"]["threshold_source"] == "val_f1_max"
  assert on_disk["model"]["kind"] == "teacher" and on_disk["model"]["sampler"] == "ddim"
  assert on_disk["image"]["n_good"] == on_disk["image"]["n_crack"] == config.data.synthetic.num_test
  c = on_disk["image"]["confusion"]
  assert c["tp"] + c["fn"] == on_disk["image"]["n_crack"] and c["fp"] + c["tn"] == on_disk["image"]["n_good"]
  rows = list(csv.DictReader(open(os.path.join(workdir, "scores.csv"))))
  scores, labels = [float(r["score"]) for r in rows], [int(r["label"]) for r in rows]
  assert on_disk["image"]["auroc"] == pytest.approx(metrics_lib.auroc(scores, labels))  # the report is its own data
  assert on_disk["model"]["params"] == count_params(train_lib.load_trained(config, workdir).ema_params)
  for name in ("histogram", "roc", "pr", "confusion", "worst_misses", "worst_false_alarms"):
    assert os.path.getsize(os.path.join(workdir, "plots", f"{name}.png")) > 1000, name
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["sampler"]["num_steps"] == config.sampler.num_steps
  assert len(rows) == 2 * config.data.synthetic.num_test


def test_rerun_reuses_the_checkpoint_and_reproduces_the_metrics(trained):
  config, workdir, metrics = trained
  steps = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  again = jobs.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == steps
  assert again["image"]["auroc"] == metrics["image"]["auroc"] and again["image"]["threshold"] == metrics["image"]["threshold"]


def test_evaluate_on_another_root_does_not_retrain_or_overwrite(trained, tmp_path):
  config, workdir, _ = trained
  own = open(os.path.join(workdir, "metrics.json")).read()
  root = make_root(tmp_path / "other", with_val=False)
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.eval.root = root
    c.eval.name = "other"
  out = jobs.evaluate(c, workdir)
  assert open(os.path.join(workdir, "metrics.json")).read() == own
  with open(os.path.join(workdir, "eval", "other", "metrics.json")) as f:
    m = json.load(f)
  assert m == json.loads(json.dumps(out))
  # No val/ in that root: part of train/good is held out, and its sound photos against the same photos with a
  # synthetic crack set the threshold; the operating points measure recall on those synthetic cracks.
  assert m["image"]["threshold_source"] == "val_synthetic_f1_max"
  points = json.load(open(os.path.join(workdir, "eval", "other", "operating_points.json")))["points"]
  assert points["recall:0.95"]["val_recall"] >= 0.95 and points["val_f1"]["threshold"] == m["image"]["threshold"]
  assert m["data"]["skipped_files"] == ["test/good/empty.jpg: empty file (0 bytes)"] and "pixel" in m
  assert os.path.exists(os.path.join(workdir, "eval", "other", "plots", "worst_misses.png"))


def test_named_evaluation_of_the_same_root_keeps_the_runs_own_results(trained):
  config, workdir, _ = trained
  own = open(os.path.join(workdir, "metrics.json")).read()
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.eval.name = "t10"
    c.anomaly.t_start = 10
    c.anomaly.heal_steps = 1  # the one-step x0 estimate
    c.anomaly.pooling = "topk_mad"
  out = jobs.evaluate(c, workdir)
  assert out["model"]["heal_steps"] == 1 and out["model"]["pooling"] == "topk_mad"
  assert open(os.path.join(workdir, "metrics.json")).read() == own
  assert (
    out["model"]["t_start"] == 10
    and json.load(open(os.path.join(workdir, "eval", "t10", "config.json")))["anomaly"]["t_start"] == 10
  )
  assert set(out["val"]) == {"auroc", "ap", "n_good", "n_crack"}


def test_ddpm_config_heals_with_the_same_trained_model(trained):
  from configs import ddpm_1000

  _, workdir, _ = trained
  c = ddpm_1000.get_config("tiny")
  with c.unlocked():
    c.eval.name = "ddpm"
  out = jobs.evaluate(c, workdir)
  # DDPM on the full schedule walks every timestep from t_start down to 0.
  assert out["model"]["sampler"] == "ddpm" and out["model"]["heal_steps"] == c.anomaly.t_start + 1


def test_predict_scores_a_folder_and_reports_unreadable_files(trained, tmp_path):
  config, workdir, _ = trained
  root = make_root(tmp_path / "p", with_val=False)
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.predict.input = os.path.join(root, "test")
  out = jobs.predict(c, workdir)
  rows = list(csv.DictReader(open(out)))
  assert len(rows) == 9
  bad = [r for r in rows if r["error"]]
  assert len(bad) == 1 and bad[0]["file"].endswith("empty.jpg") and "empty" in bad[0]["error"]
  assert len(os.listdir(os.path.join(os.path.dirname(out), "overlays"))) == 8


def test_evaluate_without_a_checkpoint_is_a_clear_error_and_leaves_nothing(tmp_path, tiny_config):
  with pytest.raises(UserError, match="no trained model in .*train it first with the same --config and --workdir"):
    jobs.evaluate(tiny_config, str(tmp_path))
  assert os.listdir(tmp_path) == []  # no empty checkpoints/ folder left behind


def test_changing_the_model_of_a_trained_workdir_is_refused(trained):
  config, workdir, _ = trained
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.model.channels = 16
  with pytest.raises(ValueError, match="config.model.channels"):
    jobs.train_and_evaluate(c, workdir)


def test_main_rejects_a_wrong_config_value_naming_the_field(tmp_path):
  r = subprocess.run(
    [sys.executable, "main.py", "--config=configs/ddim_50.py:tiny", f"--workdir={tmp_path}", "--config.anomaly.pooling=mean"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert r.returncode != 0 and "config.anomaly.pooling" in r.stderr


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data is not here")
@pytest.mark.parametrize(
  "name,splits", [("deepcrack", {"train", "val", "test"}), ("concrete_pavement", {"train", "val", "test", "unlabeled"})]
)
def test_real_roots_are_read_as_they_are(tmp_path_factory, name, splits):
  from crackjax.data import builders, decode, pipeline

  root = os.path.join(SHARED_DATA, name)
  plan = builders.scan_root(root, 0.1)
  assert set(plan) == splits
  for items in plan.values():  # a few files of every split decode (the whole set: concrete_pavement, 4,600)
    for path, _, _ in items[:: max(1, len(items) // 3)][:3]:
      img = decode.read_image(path)
      assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, path
  if name != "deepcrack":
    return
  # DeepCrack end to end through TFDS (the smaller root): every test image has its mask.
  b = builders.make_builder(root=root, data_dir=str(tmp_path_factory.mktemp("tfds")), val_fraction=0.1)
  assert set(b.info.splits) == splits
  test = pipeline.load_split(b, "test", resize=0.5, max_images=6)
  assert len(test) == 6 and set(test.labels) <= {1} and test.has_mask.all() and all(m.sum() > 0 for m in test.masks)


# ------------------------------------------------------ the threshold comes from val; verdicts follow it


def _csv(path):
  return list(csv.DictReader(open(path)))


def test_the_threshold_is_val_f1_max_not_tests(darkness_run):
  config, workdir, out = darkness_run
  val = _csv(os.path.join(workdir, "val_scores.csv"))
  _, val_th = metrics_lib.f1_max([float(r["score"]) for r in val], [int(r["label"]) for r in val])
  assert out["image"]["threshold_source"] == "val_f1_max" and out["image"]["threshold"] == pytest.approx(val_th)
  assert out["image"]["threshold_f1_max"] != pytest.approx(val_th)  # the test optimum differs: the check can fail


def test_every_verdict_follows_the_threshold(darkness_run):
  config, workdir, out = darkness_run
  th = out["image"]["threshold"]
  rows = _csv(os.path.join(workdir, "scores.csv"))
  assert {r["verdict"] for r in rows} == {"crack", "good"}
  assert all(r["verdict"] == ("crack" if float(r["score"]) >= th else "good") for r in rows)
  c = out["image"]["confusion"]
  assert c["tp"] + c["fp"] == sum(r["verdict"] == "crack" for r in rows)
  pc = config.copy_and_resolve_references()
  with pc.unlocked():
    pc.predict.input = os.path.join(config.data.root, "test")
  pred = _csv(jobs.predict(pc, workdir))
  assert {r["verdict"] for r in pred} == {"crack", "good"}
  assert all(r["verdict"] == ("crack" if float(r["score"]) >= th else "good") for r in pred)
  by_name = {os.path.relpath(r["file"], config.data.root): float(r["score"]) for r in pred}
  assert all(by_name[r["file"]] == pytest.approx(float(r["score"])) for r in rows)  # predict scores as evaluate does


def test_predict_keeps_same_stem_files_apart_resumes_and_fails_when_nothing_scores(darkness_run, tmp_path):
  from tests.test_data import _texture

  config, workdir, _ = darkness_run
  folder = tmp_path / "in"
  os.makedirs(folder)
  from PIL import Image

  Image.fromarray(_texture(1)).save(folder / "a.png")
  Image.fromarray(_texture(2)).save(folder / "a.jpg")
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.predict.input = str(folder)
  out = jobs.predict(c, workdir)
  assert sorted(os.listdir(os.path.join(os.path.dirname(out), "overlays"))) == ["a.jpg.png", "a.png.png"]
  first = _csv(out)
  Image.fromarray(_texture(3)).save(folder / "b.png")
  again = _csv(jobs.predict(c, workdir))  # resumes: a.* kept as they were, b scored
  assert [r["file"] for r in again][:2] == [r["file"] for r in first] and len(again) == 3
  bad = tmp_path / "bad"
  os.makedirs(bad)
  (bad / "x.png").write_bytes(b"")
  with c.unlocked():
    c.predict.input = str(bad)
  with pytest.raises(ValueError, match="none of the 1 file"):
    jobs.predict(c, workdir)


def _main(*args, cwd=REPO):
  return subprocess.run([sys.executable, "main.py", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_bad_command_lines_get_one_line(tmp_path):
  (tmp_path / "file").write_text("x")
  cfg, w = "--config=configs/darkness.py:tiny", f"--workdir={tmp_path}/w"
  cases = [
    ([cfg, f"--workdir={tmp_path}/file/sub"], "is a file, not a folder"),
    ([cfg, w, "--config.anomaly.t_strat=5"], "did you mean --config.anomaly.t_start"),
    ([cfg, w, "--config.data.val_fraction=0", f"--config.data.root={tmp_path}/root"], "no val/ folder and config.data.val_"),
  ]
  from tests.test_data import make_root

  make_root(tmp_path / "root", with_val=False, bad=False)
  for args, message in cases:
    r = _main(*args)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, (args, r.stderr[-800:])


def test_a_root_without_test_is_refused_before_training(tmp_path, tiny_config):
  from tests.test_data import make_root

  root = make_root(tmp_path / "root", bad=False)

  shutil.rmtree(os.path.join(root, "test"))
  c = tiny_config.copy_and_resolve_references()
  with c.unlocked():
    c.data.root = root
  with pytest.raises(UserError, match="no test/ folder to evaluate on .checked before training"):
    jobs.train_and_evaluate(c, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_a_streamed_evaluation_decodes_as_it_scores_and_reports_the_same(tmp_path):
  """data.stream: val and test are decoded image by image and only the pixel metrics' maps are kept, with the
  same metrics, scores and figures as an evaluation in memory."""
  from configs import darkness
  from crackjax.data import builders, pipeline

  root = make_root(tmp_path / "root")
  out = {}
  for stream in (False, True):
    c = darkness.get_config(f"data={root}")
    c.data.stream = stream
    c.data.tfds_dir = str(tmp_path / "tfds")
    out[stream] = jobs.train_and_evaluate(c, str(tmp_path / f"s{int(stream)}"))
    assert sorted(os.listdir(tmp_path / f"s{int(stream)}" / "plots")) == sorted(os.listdir(tmp_path / "s0" / "plots"))
  for section in ("image", "pixel"):
    assert out[True][section] == out[False][section]
  rows = [_csv(tmp_path / f"s{i}" / "scores.csv") for i in (0, 1)]
  assert rows[0] == rows[1] and len(rows[0]) == 8
  lazy = pipeline.load_split(builders.builder_for(c, str(tmp_path / "s1"), root), "test", resize=1.0, stream=True)
  assert isinstance(lazy.images, pipeline.LazyImages) and lazy.filenames == [r["file"] for r in rows[0]]
  i = lazy.filenames.index("test/crack/c0.jpg")
  assert lazy.images[i].shape == (32, 32, 3) and lazy.masks[i].sum() > 0 and lazy.has_mask[i]


def test_saved_maps_pool_to_the_scores_reported(tmp_path):
  """eval.save_maps: every val and test map is written (also when streaming), each pools to the score in
  val_scores.csv / scores.csv."""
  from configs import darkness
  from crackjax import report

  root = make_root(tmp_path / "root")
  c = darkness.get_config(f"data={root}")
  c.data.stream = True
  c.data.tfds_dir = str(tmp_path / "tfds")
  c.eval.save_maps = True
  c.anomaly.pooling, c.anomaly.mad_floor, c.anomaly.border = "topk_mad", 0.01, 2  # every pooling argument in play
  workdir = str(tmp_path / "run")
  out = jobs.train_and_evaluate(c, workdir)
  for split, scores in (("val", "val_scores.csv"), ("test", "scores.csv")):
    names, labels, maps = report.load_maps(os.path.join(workdir, f"maps_{split}.npz"))
    rows = {r["file"]: r for r in _csv(os.path.join(workdir, scores))}
    assert sorted(names) == sorted(rows) and len(maps) == len(rows) == {"val": 6, "test": 8}[split]
    for n, y, m in zip(names, labels, maps):
      assert m.dtype == np.float32 and m.ndim == 2 and m.size > 0 and int(rows[n]["label"]) == y
      s = Pooling.of(out["model"]).score(m)
      assert s == pytest.approx(float(rows[n]["score"]), rel=1e-6)
  c.eval.test, c.eval.name = False, "v"  # val only: the maps go beside its metrics.json
  jobs.evaluate(c, workdir)
  assert os.path.exists(os.path.join(workdir, "eval", "v", "maps_val.npz"))
  assert not os.path.exists(os.path.join(workdir, "eval", "v", "maps_test.npz"))


def test_evaluation_localizes_with_the_darkness_and_scores_with_the_image_map(tmp_path):
  """anomaly.localization_darkness = 2, localization_zscore = 0.5, localization_background = 3 and
  localization_sigma = 0.5 on the darkness kind's black top-hat map: the scores are those of w = 0 to the last
  digit, the saved maps are L = map + 2 (R - L)(1 / R + 0.5 / std(L)), L the luminance smoothed with sigma 0.5 and
  R L smoothed with sigma 3, the pixel
  metrics are L's, the file says so, and the export carries the settings."""
  from configs import darkness
  from crackjax import report
  from crackjax.data import builders, pipeline

  root = make_root(tmp_path / "root")
  out, maps = {}, {}
  for kind, w in (("tophat", 0.0), ("tophat", 2.0)):
    c = darkness.get_config(f"data={root}")
    c.data.tfds_dir = str(tmp_path / "tfds")
    c.eval.save_maps = True
    c.darkness.map = kind
    c.anomaly.localization_darkness = w
    c.anomaly.localization_zscore = 0.5 if w else 0.0
    c.anomaly.localization_background = 3.0 if w else 0.0
    c.anomaly.localization_sigma = 0.5 if w else 1.0
    workdir = str(tmp_path / f"{kind}{w:g}")
    out[kind, w] = jobs.train_and_evaluate(c, workdir)
    maps[kind, w] = report.load_maps(os.path.join(workdir, "maps_test.npz"))
    assert out[kind, w]["model"]["localization_darkness"] == w
    got = out[kind, w]["model"]
    assert (got["localization_zscore"], got["localization_background"], got["localization_sigma"]) == (
      (0.5, 3.0, 0.5) if w else (0.0, 0.0, 1.0)
    )
  assert _csv(tmp_path / "tophat0" / "scores.csv") == _csv(tmp_path / "tophat2" / "scores.csv")
  assert out["tophat", 0.0]["image"] == out["tophat", 2.0]["image"]
  assert maps["tophat", 0.0][0] == maps["tophat", 2.0][0]
  test = pipeline.load_split(builders.builder_for(c, workdir, root), "test", resize=c.data.resize)
  assert test.filenames == maps["tophat", 2.0][0]
  for img, m0, m2 in zip(test.images, maps["tophat", 0.0][2], maps["tophat", 2.0][2]):
    lum = ndimage.gaussian_filter((img.astype(np.float64) / 255 * [0.299, 0.587, 0.114]).sum(-1), 0.5, mode="mirror")
    ref = ndimage.gaussian_filter(lum, 3.0, mode="mirror", truncate=3.0)
    want = 2 * (ref - lum) * (1 / ref + 0.5 / lum.std())
    np.testing.assert_allclose((m2 - m0)[3:-3, 3:-3], want[3:-3, 3:-3], atol=1e-2)
  for w in (0.0, 2.0):  # the pixel metrics are the saved maps' (and they differ)
    pm = report.split_pixel_metrics(test, maps["tophat", w][2])
    assert {k: pm[k] for k in ("auroc", "aupro", "ap")} == {k: out["tophat", w]["pixel"][k] for k in ("auroc", "aupro", "ap")}
  assert out["tophat", 0.0]["pixel"]["auroc"] != out["tophat", 2.0]["pixel"]["auroc"]
  exp = jobs.export(c, workdir)
  meta = json.load(open(os.path.join(exp, "export.json")))
  assert [meta[f"localization_{k}"] for k in ("darkness", "zscore", "background", "sigma")] == [2.0, 0.5, 3.0, 0.5]
  spec = importlib.util.spec_from_file_location("crackjax_export", os.path.join(exp, "crackjax_export.py"))
  loader = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(loader)
  for name, m2 in list(zip(*maps["tophat", 2.0][::2]))[:3]:  # the loader's localization map is the saved one
    np.testing.assert_allclose(loader.Exported(exp).predict(os.path.join(root, name))[2], m2, atol=1e-4)
  with np.load(os.path.join(tmp_path / "tophat2", "maps_test.npz")) as z:
    assert float(z["localization_darkness"]) == 2.0  # the file says which maps it holds


def test_a_val_only_evaluation_needs_no_test_split(tmp_path):
  """eval.test=False on a root with train/ and val/ but no test/ (settings are chosen before the test images
  exist): val is scored and its metrics written; a test evaluation of that root names what is missing."""

  from configs import darkness

  root = make_root(tmp_path / "root")
  shutil.rmtree(os.path.join(root, "test"))
  shutil.rmtree(os.path.join(root, "ground_truth"))
  c = darkness.get_config(f"data={root}")
  c.data.tfds_dir = str(tmp_path / "tfds")
  workdir = str(tmp_path / "run")
  jobs.train_only(c, workdir)
  c.eval.test, c.eval.name = False, "v"
  out = jobs.evaluate(c, workdir)
  assert out["val"]["n_good"] == 3 and out["val"]["n_crack"] == 3 and 0 <= out["val"]["auroc"] <= 1
  assert os.path.exists(os.path.join(workdir, "eval", "v", "metrics.json"))
  c.eval.test = True
  with pytest.raises(UserError, match="no test split"):
    jobs.evaluate(c, workdir)


@functools.cache
def _main_module():
  """main.py loaded once (its absl flags can be defined only once per process)."""
  spec = importlib.util.spec_from_file_location("crackjax_main", os.path.join(REPO, "main.py"))
  main = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(main)
  return main


def test_main_gives_the_cpu_one_xla_device_per_core_unless_told_otherwise(capsys):
  """main.cpu_devices: the largest power of two <= the cores (at most 8) as host devices, before jax starts; an
  XLA_FLAGS that sets a count (the tests' own) is left alone, CRACKJAX_CPU_DEVICES chooses, and a bad value is one
  line."""
  main = _main_module()
  for cores, want in ((1, 1), (2, 2), (3, 2), (6, 4), (16, 8)):
    env = {"XLA_FLAGS": "--xla_backend_optimization_level=0"}
    assert main.cpu_devices(env, cores) == want
    expect = "--xla_backend_optimization_level=0" + (f" --xla_force_host_platform_device_count={want}" if want > 1 else "")
    assert env["XLA_FLAGS"] == expect
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  assert main.cpu_devices(env, 2) == 0 and env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"
  env = {"CRACKJAX_CPU_DEVICES": "1"}
  assert main.cpu_devices(env, 8) == 1 and "XLA_FLAGS" not in env
  with pytest.raises(SystemExit) as e:
    main.cpu_devices({"CRACKJAX_CPU_DEVICES": "two"}, 2)
  assert e.value.code == 2 and "error: CRACKJAX_CPU_DEVICES='two' is not a whole number" in capsys.readouterr().err


def test_main_gives_a_user_error_one_line_and_a_program_error_its_traceback(capsys):
  """main.run: a UserError (and an OSError: a full disk) is one line on stderr with exit status 2; a bug (here a
  KeyError, and a plain ValueError from inside a library) propagates with its traceback."""
  from crackjax.errors import UserError

  main = _main_module()

  def raising(e):
    def fn():
      raise e

    return fn

  with pytest.raises(SystemExit) as e:
    main.run(raising(UserError("config.x: must be > 0, got -1")))
  assert e.value.code == 2 and capsys.readouterr().err == "error: config.x: must be > 0, got -1\n"
  with pytest.raises(SystemExit) as e:
    main.run(raising(OSError(28, "No space left on device", "/full/disk/file")))
  assert e.value.code == 2 and "/full/disk/file" in capsys.readouterr().err
  for bug in (KeyError("unet"), ValueError("operands could not be broadcast")):
    with pytest.raises(type(bug)):
      main.run(raising(bug))
