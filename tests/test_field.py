"""Field photos and field failures: EXIF orientation and position, a damaged checkpoint or cached shard, two runs in
one folder, a full disk."""

import csv
import errno
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import ExifTags, Image

from crackjax import files, jobs, predict
from crackjax import train as train_lib
from crackjax.data import decode
from tests.test_mask import crack_photo
from tests.test_train import _images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _exif_jpeg(path, displayed: np.ndarray, orientation: int, gps: bool, taken: str = "") -> None:
  """Saves `displayed` as a camera would with EXIF orientation 6 (the pixels stored turned 90 degrees the other
  way, the tag saying how to turn them upright), or as it is with orientation 1; with a GPS position and time."""
  stored = np.rot90(displayed, k=1) if orientation == 6 else displayed  # 6: a viewer turns it 90 degrees clockwise
  exif = Image.Exif()
  exif[0x0112] = orientation
  if gps:  # 33 deg 51' 54.36" S, 151 deg 12' 36" E, 12.5 m above sea level
    exif[ExifTags.IFD.GPSInfo] = {1: "S", 2: (33.0, 51.0, 54.36), 3: "E", 4: (151.0, 12.0, 36.0), 5: b"\x00", 6: 12.5}
  if taken:
    exif.get_ifd(ExifTags.IFD.Exif)[36867] = taken
  Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes(), quality=95)


def test_a_sideways_phone_photo_is_scored_masked_and_placed_as_displayed(darkness_run, tmp_path):
  """A 600x400 photo (as displayed) with a crack along y = 200, stored sideways with EXIF orientation 6 and a GPS
  tag, and a sound photo without EXIF: the crack's mask is 600x400 and lies on the crack as displayed, the export
  loader reads it upright too, and predictions.csv, summary.json and report.html carry its time and position
  (empty for the other)."""
  from crackjax import export_loader

  config, workdir, _ = darkness_run
  folder = tmp_path / "photos"
  folder.mkdir()
  sound, crack, band = crack_photo()
  _exif_jpeg(folder / "phone.jpg", crack, 6, gps=True, taken="2026:05:04 10:11:12")
  Image.fromarray(sound).save(folder / "plain.png")
  assert Image.open(folder / "phone.jpg").size == (400, 600)  # stored sideways
  assert (
    decode.read_image(str(folder / "phone.jpg")).shape == export_loader.read_rgb(str(folder / "phone.jpg")).shape == (400, 600, 3)
  )
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.data.resize = 0.5
    c.predict.update(input=str(folder), threshold=0.4)
    c.mask.update(low=0.5, high=0.6, min_length=20.0)
  out = jobs.predict(c, workdir)
  rows = {os.path.basename(r["file"]): r for r in csv.DictReader(open(out))}
  assert rows["phone.jpg"]["verdict"] == "crack"
  hot = np.asarray(Image.open(os.path.join(os.path.dirname(out), "masks", "phone.jpg.png")))[..., 3] > 0
  assert hot.shape == (400, 600)  # the photo as displayed, not as stored
  assert hot[band].mean() > 0.7 and hot[~band].mean() < 0.01
  ys, xs = np.nonzero(hot)
  assert abs(ys.mean() - 200.2) < 1.5 and xs.min() >= 100 - 3 and xs.max() <= 500 + 3
  r = rows["phone.jpg"]
  assert (r["taken"], r["latitude"], r["longitude"], r["altitude_m"]) == (
    "2026-05-04 10:11:12",
    "-33.8651000",
    "151.2100000",
    "12.50",
  )
  assert all(rows["plain.png"][k] == "" for k in decode.METADATA)  # absent: empty, nothing invented
  summary = json.load(open(os.path.join(os.path.dirname(out), "summary.json")))
  assert summary["metadata"]["with_position"] == 1 and [p["file"] for p in summary["metadata"]["photos"]] == [r["file"]]
  page = open(os.path.join(os.path.dirname(out), "report.html")).read()
  assert 'data-lat="-33.8651000"' in page and 'id="f-from"' in page and "2026-05-04 10:11:12" in page


def test_exif_time_and_position_parse_and_absent_tags_stay_empty(tmp_path):
  img = np.full((20, 30, 3), 128, np.uint8)
  _exif_jpeg(tmp_path / "a.jpg", img, 1, gps=True)
  _exif_jpeg(tmp_path / "b.jpg", img, 1, gps=False, taken="2026:12:06 08:00:01")
  Image.fromarray(img).save(tmp_path / "c.png")
  a, b, c = (decode.read_metadata(str(tmp_path / n)) for n in ("a.jpg", "b.jpg", "c.png"))
  assert float(a["latitude"]) == pytest.approx(-(33 + 51 / 60 + 54.36 / 3600), abs=1e-7) and a["taken"] == ""
  assert float(a["longitude"]) == pytest.approx(151.21, abs=1e-7)
  assert b == {"taken": "2026-12-06 08:00:01", "latitude": "", "longitude": "", "altitude_m": ""}
  assert c == dict.fromkeys(decode.METADATA, "")
  assert decode.read_metadata(str(tmp_path / "missing.jpg")) == dict.fromkeys(decode.METADATA, "")


def _truncate_step(ckpt_dir: str) -> None:
  """What a crash during a save leaves: every file of the step cut to half its length."""
  for base, _, names in os.walk(ckpt_dir):
    for n in names:
      path = os.path.join(base, n)
      size = os.path.getsize(path)
      with open(path, "r+b") as f:
        f.truncate(size // 2)


def test_a_damaged_checkpoint_is_set_aside_and_training_ends_where_an_uninterrupted_run_does(tmp_path, tiny_config, caplog):
  full = train_lib.train(tiny_config, str(tmp_path / "a"), _images())
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  last = str(tmp_path / "b" / "checkpoints" / str(tiny_config.train.num_steps))
  _truncate_step(last)
  with pytest.raises(ValueError, match="is damaged"):  # a run that only reads the model names it, moves nothing
    train_lib.load_trained(tiny_config, str(tmp_path / "b"))
  assert os.path.isdir(last)
  caplog.set_level("WARNING", logger="crackjax")
  resumed = train_lib.train(tiny_config, str(tmp_path / "b"), _images())
  assert os.path.isdir(last + ".damaged") and "is damaged" in caplog.text and "moved aside" in caplog.text
  assert int(resumed.step) == tiny_config.train.num_steps
  for x, y in zip(jax.tree.leaves((full.params, full.ema_params)), jax.tree.leaves((resumed.params, resumed.ema_params))):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  # Every step damaged: one error naming the folder; a config that does not fit an intact one still says so.
  for step in train_lib.checkpoint_manager(str(tmp_path / "b"), tiny_config).all_steps():
    _truncate_step(str(tmp_path / "b" / "checkpoints" / str(step)))
  with pytest.raises(ValueError, match="every checkpoint in .* is damaged"):
    train_lib.train(tiny_config, str(tmp_path / "b"), _images())
  wide = tiny_config.copy_and_resolve_references()
  with wide.unlocked():
    wide.model.channels = 2 * tiny_config.model.channels
  with pytest.raises(ValueError, match="does not fit this config's model"):
    train_lib.train(wide, str(tmp_path / "a"), _images())


def test_a_damaged_cached_shard_is_set_aside_and_computed_again(tmp_path):
  from crackjax.scorer import sharded_cache

  calls = []

  def compute(lo, hi, k):
    calls.append(k)
    return {"v": np.arange(lo, hi)}, list(range(lo, hi))

  def read(z, n):
    return list(z["v"])

  names = [f"n{i}" for i in range(6)]
  assert sharded_cache(str(tmp_path), names, 4, compute, read) == list(range(6)) and calls == [0, 1]
  path = tmp_path / "shard_0000.npz"
  path.write_bytes(path.read_bytes()[:100])
  assert sharded_cache(str(tmp_path), names, 4, compute, read) == list(range(6)) and calls == [0, 1, 0]
  assert (tmp_path / "shard_0000.npz.damaged").stat().st_size == 100  # kept, not deleted


HOLD = (  # another run holding a folder's lock (exclusive, or shared) until it is killed
  "import sys, time; from crackjax import files; files.Lock(sys.argv[1], shared=sys.argv[2] == 'shared').acquire(); "
  "print('held', flush=True); time.sleep(60)"
)


def _holder(folder, mode="exclusive"):
  p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode], cwd=ROOT, stdout=subprocess.PIPE, text=True)
  assert p.stdout.readline().strip() == "held"
  return p


def test_a_live_lock_is_refused_naming_its_holder_and_a_stale_one_is_taken_over(tmp_path, caplog):
  live = _holder(tmp_path)
  try:
    with pytest.raises(files.Busy, match=f"in use by pid {live.pid} on "):
      files.Lock(str(tmp_path)).acquire()
    with pytest.raises(files.Busy):
      files.Lock(str(tmp_path), shared=True).acquire()
  finally:
    live.kill()
    live.wait()
  caplog.set_level("WARNING", logger="crackjax")
  with files.Lock(str(tmp_path)):  # the killed holder's lock went with it; its note is taken over
    assert f"taking over the lock left by pid {live.pid}" in caplog.text
  # Runs that only read share the folder; a writer waits for them.
  reader = _holder(tmp_path, "shared")
  try:
    with files.Lock(str(tmp_path), shared=True):
      with pytest.raises(files.Busy, match=f"pid {reader.pid}"):
        files.Lock(str(tmp_path)).acquire()
  finally:
    reader.kill()
    reader.wait()


def test_the_second_run_on_a_workdir_stops_in_one_line_and_reading_runs_hold_their_own_folders(tmp_path, tiny_config):
  live = _holder(tmp_path)
  try:
    env = {**os.environ, "CRACKJAX_CPU_DEVICES": "1"}
    cmd = [sys.executable, "main.py", "--config=configs/ddim_50.py:tiny", f"--workdir={tmp_path}", "--mode=train"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
  finally:
    live.kill()
    live.wait()
  assert r.returncode == 2 and f"is in use by pid {live.pid}" in r.stderr and "Traceback" not in r.stderr
  assert not os.path.exists(tmp_path / "config.json")  # nothing written beside the first run
  c = tiny_config.copy_and_resolve_references()
  with c.unlocked():
    c.predict.input, c.eval.name = "/photos/site_a", "other"
  w = str(tmp_path)
  assert jobs.held_folders("train", c, w) == [(w, False)]
  assert jobs.held_folders("predict", c, w) == [(w, True), (os.path.join(w, "predict", "site_a"), False)]
  assert jobs.held_folders("evaluate", c, w) == [(w, True), (os.path.join(w, "eval", "other"), False)]


def test_a_full_disk_during_predict_names_the_file_and_a_rerun_resumes_after_the_rows_written(
  darkness_run, tmp_path, monkeypatch
):
  from tests.test_data import _texture

  config, workdir, _ = darkness_run
  folder = tmp_path / "in"
  folder.mkdir()
  for i in range(4):
    Image.fromarray(_texture(i)).save(folder / f"p{i}.png")
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.predict.input = str(folder)
  real, calls = Image.Image.save, []

  def full_disk(im, fp, *a, **kw):  # each photo saves its mask, thumbnail and figure; the disk fills at the 7th
    calls.append(fp)
    if len(calls) == 7:
      raise OSError(errno.ENOSPC, "No space left on device")  # as a write to an open file raises it: no name
    return real(im, fp, *a, **kw)

  monkeypatch.setattr(Image.Image, "save", full_disk)
  with pytest.raises(OSError) as e:
    jobs.predict(c, workdir)
  assert calls[6].endswith(".png.png") and files.describe(e.value) == f"{calls[6]}: No space left on device (ENOSPC)"
  out = os.path.join(predict.output_dir(c, workdir), "predictions.csv")
  first = list(csv.DictReader(open(out)))
  assert len(first) == 2 and all(r["score"] for r in first)  # the rows written before stay whole
  monkeypatch.setattr(Image.Image, "save", real)
  jobs.predict(c, workdir)
  again = {r["file"]: r for r in csv.DictReader(open(out))}
  assert len(again) == 4 and all(again[r["file"]] == r for r in first)  # resumed after them, they unchanged


def test_a_row_whose_write_fails_is_cut_off_and_the_rows_before_stay(tmp_path, monkeypatch):
  path = str(tmp_path / "p.csv")
  w = predict._Writer(path, ["file", "score"], [{"file": "a", "score": "1"}])
  w.row({"file": "b", "score": "2"})
  real = os.write

  def half(fd, data):  # half the row reaches the disk, then it is full
    real(fd, data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "write", half)
  with pytest.raises(OSError, match="No space left") as e:
    w.row({"file": "c", "score": "3"})
  monkeypatch.setattr(os, "write", real)
  w.close()
  assert e.value.filename == path
  assert [r["file"] for r in csv.DictReader(open(path))] == ["a", "b"]
  assert list(predict._done_rows(path)) == ["a", "b"]
