"""The jobs main.py runs, on tiny configs: train-then-evaluate, rerun, evaluate elsewhere, predict, bad input."""

import csv
import json
import os
import subprocess
import sys

import pytest

from crackjax import jobs
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
  assert 0.0 <= on_disk["image"]["auroc"] <= 1.0 and on_disk["speed"]["images_per_second"] > 0
  for name in ("histogram", "roc", "pr", "confusion", "worst_misses", "worst_false_alarms"):
    assert os.path.getsize(os.path.join(workdir, "plots", f"{name}.png")) > 1000, name
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["sampler"]["num_steps"] == config.sampler.num_steps
  rows = list(csv.DictReader(open(os.path.join(workdir, "scores.csv"))))
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
  # No val/ in that root: part of train/good is held out, a percentile of its scores sets the threshold.
  assert m["image"]["threshold_source"].startswith("val_good_p")
  assert len(m["data"]["skipped_files"]) == 2 and "pixel" in m
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
  assert 0.0 <= out["image"]["auroc"] <= 1.0


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
  assert all(r["verdict"] in ("crack", "good") for r in rows if not r["error"])
  assert len(os.listdir(os.path.join(os.path.dirname(out), "overlays"))) == 8


def test_evaluate_without_a_checkpoint_is_a_clear_error(tmp_path, tiny_config):
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    jobs.evaluate(tiny_config, str(tmp_path))


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
  from crackjax.data import builders, pipeline

  b = builders.make_builder(root=os.path.join(SHARED_DATA, name), data_dir=str(tmp_path_factory.mktemp("tfds")), val_fraction=0.1)
  assert set(b.info.splits) == splits
  test = pipeline.load_split(b, "test", resize=0.5, max_images=6)
  assert len(test) == 6 and set(test.labels) <= {0, 1}
  if name == "deepcrack":
    assert test.has_mask.all() and all(m.sum() > 0 for m in test.masks)
