"""Inspection on real photos: operating points, large and tiny photos, report.html in a real browser, export."""

import csv
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from crackjax import jobs, thresholds
from crackjax import predict as predict_lib
from crackjax.data import synthetic

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def test_operating_points_meet_their_targets_on_val():
  rng = np.random.default_rng(0)
  labels = np.r_[np.zeros(200, int), np.ones(100, int)]
  scores = np.r_[rng.normal(0, 1, 200), rng.normal(2, 1, 100)]
  for r in (0.9, 0.95, 0.99, 1.0):
    p = thresholds.operating_point(scores, labels, f"recall:{r}")
    assert p["val_recall"] >= r and (scores[labels == 1] >= p["threshold"]).mean() == p["val_recall"]
    higher = np.sort(scores[labels == 1])[scores[labels == 1] > p["threshold"]] if r < 1 else []
    assert len(higher) < np.ceil(r * 100)  # the highest such threshold: one step up loses the target
  for f in (0.0, 0.01, 0.05, 0.5):
    p = thresholds.operating_point(scores, labels, f"false_alarms:{f}")
    assert p["val_false_alarm_rate"] <= f + 1e-12
  with pytest.raises(ValueError, match="operating_point must be"):
    thresholds.parse_point("recall:1.5")


@pytest.fixture(scope="module")
def dark(darkness_run):
  return darkness_run


def _write(path, arr):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(arr).save(path)


@pytest.fixture(scope="module")
def survey(dark, tmp_path_factory):
  """A survey folder: a 4000x3000 photo with a crack, a 100x60 image, a truncated JPEG, an empty file, a text
  file named .png, a 1x1 image, a 16-bit PNG, an RGBA PNG, and a symlink loop."""
  config, workdir, _ = dark
  folder = tmp_path_factory.mktemp("survey")
  big = np.tile(synthetic.generate(0, 5, 200, crack=False, distractor_prob=0)[0], (15, 20, 1))
  big[1500:1504, 500:3500] = 40
  _write(str(folder / "site_a" / "deck.jpg"), big)
  _write(str(folder / "small.png"), synthetic.generate(0, 6, 64, crack=True)[0][:60, :])
  Image.fromarray(synthetic.generate(0, 7, 64, crack=False)[0]).save(folder / "trunc.jpg")
  data = open(folder / "trunc.jpg", "rb").read()
  open(folder / "trunc.jpg", "wb").write(data[: len(data) // 2])
  open(folder / "empty.png", "wb").close()
  open(folder / "notes.png", "w").write("not an image")
  Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "dot.png")
  Image.fromarray(synthetic.generate(0, 8, 64, crack=False)[0][..., 0].astype(np.uint16) * 257).save(folder / "deep.png")
  rgba = np.dstack([synthetic.generate(0, 9, 64, crack=False)[0], np.full((64, 64), 255, np.uint8)])
  Image.fromarray(rgba).save(folder / "alpha.png")
  os.symlink(folder, folder / "site_a" / "loop")
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.predict.input = str(folder)
    c.predict.operating_point = "recall:0.95"
  out = jobs.predict(c, workdir)
  return c, workdir, folder, out


def test_a_survey_folder_of_every_kind_of_file_is_scored_with_errors_in_rows(survey):
  c, workdir, folder, out = survey
  rows = {os.path.relpath(r["file"], folder): r for r in csv.DictReader(open(out))}
  assert set(rows) == {"site_a/deck.jpg", "small.png", "trunc.jpg", "empty.png", "notes.png", "dot.png", "deep.png", "alpha.png"}
  errors = {k: r["error"] for k, r in rows.items() if r["error"]}
  assert set(errors) == {"trunc.jpg", "empty.png", "notes.png", "dot.png"}
  assert "truncated" in errors["trunc.jpg"] and "empty" in errors["empty.png"] and "too small" in errors["dot.png"]
  assert rows["site_a/deck.jpg"]["verdict"] == "crack"
  mask = Image.open(os.path.join(os.path.dirname(out), "masks", "site_a__deck.jpg.png"))
  assert mask.size == (4000, 3000)  # the red mask at the photo's own resolution, not the model's or the display's
  hot = np.asarray(mask)[..., 0] > 0
  assert hot[1497:1507, 600:3400].mean() > hot[:1200].mean() + 0.3  # the crack lights up the mask
  summary = json.load(open(os.path.join(os.path.dirname(out), "summary.json")))
  assert summary["threshold_source"].startswith("operating point recall:0.95 (val recall")


def test_predictions_follow_the_one_verdict_rule_on_both_sides_of_the_threshold(dark, tmp_path):
  """score >= threshold is a crack and below it sound, with every score positive: the threshold set between the
  photos' scores, so that `score > 0` or `score > threshold` would be caught."""
  config, workdir, _ = dark
  for i in range(4):
    img = synthetic.generate(0, 40 + i, 48, crack=i % 2 == 1, distractor_prob=0)[0]
    Image.fromarray(img).save(tmp_path / f"p{i}.png")
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.predict.update(input=str(tmp_path), name="rule", overlays="none")
  scores = sorted(float(r["score"]) for r in csv.DictReader(open(jobs.predict(c, workdir))))
  assert scores[0] > 0 and scores[1] < scores[2]
  with c.unlocked():
    c.predict.update(threshold=scores[1], name="rule2")  # two photos at or above it, two below... or at it
  rows = list(csv.DictReader(open(jobs.predict(c, workdir))))
  for r in rows:
    assert r["verdict"] == ("crack" if float(r["score"]) >= scores[1] else "good"), r
  assert sorted(r["verdict"] for r in rows) == ["crack", "crack", "crack", "good"]  # scores[1] itself is a crack


def test_a_folder_of_mostly_cracks_gets_what_each_photo_gets_alone(dark, tmp_path):
  """Predict judges every photo in the model's own units (the threshold and the red mask chosen on val), never
  against the rest of its folder: five cracked photos and one sound one, scored together, get the scores, verdicts
  and red masks each gets in a folder of its own."""
  config, workdir, _ = dark
  names = []
  for i in range(6):
    img = synthetic.generate(0, 60 + i, 48, crack=i < 5, distractor_prob=0)[0]
    names.append(f"p{i}.png")
    _write(str(tmp_path / "all" / names[-1]), img)
    _write(str(tmp_path / f"alone{i}" / names[-1]), img)

  def run(folder, name):
    c = config.copy_and_resolve_references()
    with c.unlocked():
      c.predict.update(input=str(tmp_path / folder), name=name, overlays="none")
    out = jobs.predict(c, workdir)
    rows = {os.path.basename(r["file"]): r for r in csv.DictReader(open(out))}
    masks = {}
    for f in rows:
      path = os.path.join(
        os.path.dirname(out), "masks", predict_lib.output_name(str(tmp_path / folder / f), str(tmp_path / folder))
      )
      masks[f] = np.asarray(Image.open(path)) if os.path.exists(path) else None
    return rows, masks

  together, masks = run("all", "together")
  assert sum(r["verdict"] == "crack" for r in together.values()) >= 4  # mostly cracks, and flagged as such
  for i, f in enumerate(names):
    alone, alone_masks = run(f"alone{i}", f"alone{i}")
    assert float(alone[f]["score"]) == pytest.approx(float(together[f]["score"]), rel=1e-5)
    assert alone[f]["verdict"] == together[f]["verdict"]
    assert (alone_masks[f] is None) == (masks[f] is None)
    if masks[f] is not None:
      np.testing.assert_array_equal(alone_masks[f], masks[f])


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed")
def test_report_html_in_a_headless_browser(survey, tmp_path):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  from selenium.webdriver.common.by import By

  c, workdir, folder, out = survey
  page = os.path.join(os.path.dirname(out), "report.html")
  opts = webdriver.ChromeOptions()
  opts.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900"):  # fmt: skip
    opts.add_argument(flag)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
  try:
    driver.get("file://" + page)
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.row")
    assert len(rows) == 8
    scores = [float(r.get_attribute("data-score")) for r in rows if r.get_attribute("data-score")]
    assert scores == sorted(scores, reverse=True)
    driver.find_element(By.CSS_SELECTOR, "button[data-kind=errors]").click()
    visible = [r for r in rows if r.is_displayed()]
    assert len(visible) == 4 and all(r.get_attribute("data-kind") == "errors" for r in visible)
    driver.find_element(By.CSS_SELECTOR, "button[data-kind=flagged]").click()
    flagged = [r for r in rows if r.is_displayed()]
    assert flagged and all(r.get_attribute("data-verdict") == "crack" for r in flagged)
    flagged[0].click()
    assert driver.find_element(By.ID, "viewer").is_displayed()
    src = driver.find_element(By.ID, "v-overlay").get_attribute("src")
    assert src.endswith("overlays/" + flagged[0].get_attribute("data-overlay").split("/")[-1])
    loaded = driver.execute_script("return document.getElementById('v-overlay').naturalWidth")
    assert loaded > 0  # the overlay file opens from disk, no server
    driver.find_element(By.CSS_SELECTOR, "#viewer .close").click()
    driver.find_element(By.CSS_SELECTOR, "button[data-kind=all]").click()
    shot = os.environ.get("CRACKJAX_REPORT_SCREENSHOT", str(tmp_path / "report.png"))
    driver.save_screenshot(shot)
    assert os.path.getsize(shot) > 10_000
  finally:
    driver.quit()


def _loader(folder):
  spec = importlib.util.spec_from_file_location("crackjax_export", os.path.join(folder, "crackjax_export.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _red(path: str) -> np.ndarray:
  return np.asarray(Image.open(path))[..., 3] > 0


def test_the_exported_model_agrees_with_the_trained_one(dark, survey, tmp_path):
  """Identical scores to 1e-5, identical verdicts and the same red masks as predict's (pixels that differ: none but
  where the map sits within rounding of the decision's threshold), on whole images and on a tiled photo."""
  c, workdir, folder, out = survey
  exp = jobs.export(c, workdir)
  assert sorted(os.listdir(exp)) == ["crackjax_export.py", "export.json", "model.stablehlo", "params.npz"]
  mod = _loader(exp)
  model = mod.Exported(exp)
  rows = {r["file"]: r for r in csv.DictReader(open(out)) if r["score"]}
  masks = os.path.join(os.path.dirname(out), "masks")
  worst, red_photos = 0.0, 0
  for path, r in rows.items():
    score, verdict, _, red = model.predict(path, mod.zlib.crc32(os.path.relpath(path, str(folder)).encode()) & 0x7FFFFFFF)
    worst = max(worst, abs(score - float(r["score"])))
    assert verdict == r["verdict"]
    shipped = _red(os.path.join(masks, predict_lib.output_name(path, str(folder))))
    assert red.shape == shipped.shape and (red != shipped).mean() < 1e-4, path
    red_photos += bool(red.any())
  assert worst <= 1e-5 and red_photos >= 2  # the masks compared are not all empty
  out2 = str(tmp_path / "exported.csv")
  assert mod.main(["x", str(folder), "--out", out2]) == 0
  again = {r["file"]: r for r in csv.DictReader(open(out2))}
  assert {k: r["verdict"] for k, r in again.items() if r["score"]} == {k: r["verdict"] for k, r in rows.items()}
  for path, r in again.items():  # the masks it writes are the ones it returns
    if r["score"]:
      red = _red(os.path.join(tmp_path, "masks", os.path.relpath(path, str(folder)).replace(os.sep, "__") + ".png"))
      assert float(r["red_share"]) == pytest.approx(red.mean(), abs=1e-6)


def test_an_export_from_another_version_is_refused_clearly(dark, survey, tmp_path):
  c, workdir, folder, out = survey
  exp = jobs.export(c, workdir)
  other = tmp_path / "old"
  shutil.copytree(exp, other)
  meta = json.load(open(other / "export.json"))
  meta["format"] = "crackjax-export/0"
  json.dump(meta, open(other / "export.json", "w"))
  mod = _loader(str(other))
  with pytest.raises(ValueError, match="export format 'crackjax-export/0', this loader reads 'crackjax-export/1'"):
    mod.Exported(str(other))
  (tmp_path / "bad").mkdir()
  shutil.copy(exp + "/export.json", tmp_path / "bad")
  (tmp_path / "bad" / "model.stablehlo").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="cannot be read by jax"):
    mod.Exported(str(tmp_path / "bad"))
