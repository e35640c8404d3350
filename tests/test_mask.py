"""The red mask's decision (hysteresis, gate, border, upsampling, calibration) and each crack measured."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from crackjax import cracks, jobs
from crackjax import mask as mask_lib


def _decision(**kw):
  return mask_lib.Decision(**{"low": 0.4, "high": 0.9, "min_length": 10.0, "colour_max": 2.0, **kw})


def _scene():
  """A 60x80 map: a long faint line (0.5) with one strong pixel (1.0); a blob as high as the line's faint part
  but never strong (0.8); a short strong stub (1.0, 4 px); noise below low."""
  rng = np.random.default_rng(0)
  m = rng.uniform(0.0, 0.3, (60, 80)).astype(np.float32)
  m[30, 5:75] = 0.5
  m[30, 40] = 1.0
  m[8:12, 8:12] = 0.8
  m[50, 60:64] = 1.0
  return m


def test_hysteresis_keeps_a_line_seeded_by_its_strongest_pixel_and_drops_the_rest():
  m = _scene()
  hot = mask_lib.decide(m, _decision())
  expected = np.zeros_like(hot)
  expected[30, 5:75] = True
  assert (hot == expected).all()  # the whole faint line; not the weak blob, not the short stub, not the noise
  # Without the strong seed the line is not red; with min_length 0 the stub is.
  assert not mask_lib.decide(m, _decision(high=1.01, explain=False)).any()
  assert mask_lib.decide(m, _decision(min_length=0.0))[50, 60:64].all()
  # min_length is in working pixels: a map upsampled 2x keeps the same decision at twice the length
  assert mask_lib.decide(np.repeat(np.repeat(m, 2, 0), 2, 1), _decision(min_length=75.0, explain=False), scale=2.0).sum() == 0
  assert mask_lib.decide(np.repeat(np.repeat(m, 2, 0), 2, 1), _decision(min_length=60.0), scale=2.0)[61, 10:150].all()


def test_a_photo_passed_as_good_carries_no_red_unless_asked_and_the_border_never_does():
  m = _scene()
  assert not mask_lib.decide(m, _decision(), flagged=False).any()
  assert (mask_lib.decide(m, _decision(on_good=True), flagged=False) == mask_lib.decide(m, _decision())).all()
  hot = mask_lib.decide(m, _decision(), border=6)
  assert not hot[:, :6].any() and not hot[:, -6:].any() and hot[30, 6:74].all()


def test_a_flagged_photo_without_a_red_region_shows_its_strongest_one():
  """A faint line (0.3, below low) with its peak (0.35) flagged: the mask is the connected part of the map's top 0.5%
  that holds the peak, on the line; not with mask.explain off, not on a photo passed as good."""
  rng = np.random.default_rng(3)
  m = rng.uniform(0.0, 0.1, (100, 100)).astype(np.float32)
  m[40, 10:60] = 0.3
  m[40, 30] = 0.35
  m[80, 80] = 0.32  # a lone speck, also in the top 0.5%, not connected to the peak
  hot = mask_lib.decide(m, _decision())
  assert hot[40, 30] and hot[40].sum() == hot.sum() and 0 < hot.sum() <= 0.005 * m.size and not hot[80, 80]
  assert not mask_lib.decide(m, _decision(explain=False)).any()
  assert not mask_lib.decide(m, _decision(), flagged=False).any()
  framed = mask_lib.decide(m, _decision(), border=35)  # the peak in the frame: the strongest region inside it
  assert framed.any() and not framed[:, :35].any() and framed[40].sum() == framed.sum()


def test_upsampling_is_bilinear_and_keeps_the_maps_level():
  ramp = np.tile(np.arange(10, dtype=np.float32), (6, 1))
  up = mask_lib.upsample(ramp, (12, 20))
  assert up.shape == (12, 20)
  # pixel centres aligned: output column j sits at input coordinate (j + 0.5) / 2 - 0.5
  assert up[5, 5] == pytest.approx((5 + 0.5) / 2 - 0.5, abs=1e-5)
  assert up[3, 1:-1] == pytest.approx(np.clip((np.arange(1, 19) + 0.5) / 2 - 0.5, 0, 9), abs=1e-5)
  assert mask_lib.upsample(ramp, (6, 10)) is not None and (mask_lib.upsample(ramp, (6, 10)) == ramp).all()


def test_counts_and_scores_of_a_mask_against_ground_truth():
  gt = np.zeros((4, 4), bool)
  gt[1, :] = True
  hot = np.zeros((4, 4), bool)
  hot[1, :2] = True
  hot[3, 3] = True
  c = mask_lib.counts(hot, gt)
  assert list(c) == [2, 1, 2]
  s = mask_lib.scores_of(c)
  assert (s["precision"], s["recall"], s["f1"], s["iou"]) == pytest.approx((2 / 3, 1 / 2, 4 / 7, 2 / 5))


def test_calibration_finds_the_decision_that_separates_cracks_from_rough_grain():
  """Cracks at 0.6-1.0 over grain at 0-0.3 with bright specks (0.9, 2x2): the calibrated decision paints the
  cracks exactly (F1 1) and leaves the specks, which a single threshold at the cracks' level cannot."""
  rng = np.random.default_rng(1)
  maps, masks = [], []
  for i in range(12):
    m = rng.uniform(0.0, 0.3, (40, 40)).astype(np.float32)
    y, x = rng.integers(24, 36), rng.integers(2, 36)  # below every crack row
    m[y : y + 2, x : x + 2] = 0.9  # a speck: strong, but short
    g = np.zeros((40, 40), np.uint8)
    if i % 2:
      r = 5 + i
      m[r, 3:37] = rng.uniform(0.6, 1.0, 34)
      m[r, 20] = 1.0
      g[r, 3:37] = 1
      m[r + 1, 3:37] = 0.2
    maps.append(m)
    masks.append(g)
  d = mask_lib.calibrate(maps, masks)
  assert d.calibration["f1"] == pytest.approx(1.0)
  assert 0.3 <= d.low <= 0.6 and d.min_length > 2 * np.sqrt(2)
  assert d.colour_max >= d.high


def _band(shape, centre, length, width, angle):
  """A straight band, a crack of known length, width and angle (degrees, counter-clockwise as seen)."""
  yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
  a = np.radians(angle)
  dx, dy = xx - centre[0], -(yy - centre[1])  # y up
  u = dx * np.cos(a) + dy * np.sin(a)
  v = -dx * np.sin(a) + dy * np.cos(a)
  return (np.abs(u) < length / 2) & (np.abs(v) < width / 2)


@pytest.mark.parametrize("width", [2, 3, 5, 8, 12])
@pytest.mark.parametrize("angle", [0, 17, 30, 45, 72, 90, 135, 160])
def test_a_straight_crack_is_measured_within_10_percent_of_its_length_and_1_px_of_its_width(width, angle):
  m = _band((320, 320), (160.3, 160.2), 200, width, angle)
  (c,) = cracks.measure(m, mm_per_pixel=0.25)
  assert c["length_px"] == pytest.approx(200, rel=0.10)
  assert abs(c["mean_width_px"] - width) <= 1 and abs(c["max_width_px"] - width) <= 1
  assert min(abs(c["orientation_deg"] - angle), 180 - abs(c["orientation_deg"] - angle)) <= 2
  assert c["length_mm"] == pytest.approx(0.25 * c["length_px"]) and c["max_width_mm"] == pytest.approx(0.25 * c["max_width_px"])


def test_a_curved_crack_and_a_widening_one():
  yy, xx = np.mgrid[:300, :300] + 0.5
  r = np.hypot(xx - 150, yy - 150)
  theta = np.arctan2(yy - 150, xx - 150)
  arc = (np.abs(r - 100) < 2) & (theta > 0) & (theta < np.pi)  # half a circle of radius 100, 4 px wide
  (c,) = cracks.measure(arc)
  assert c["length_px"] == pytest.approx(np.pi * 100, rel=0.10)
  assert abs(c["mean_width_px"] - 4) <= 1
  # A crack 3 px wide on one half and 9 px on the other: mean about 6, max about 9
  m = _band((200, 300), (100.3, 100.2), 120, 3, 0) | _band((200, 300), (200.3, 100.2), 120, 9, 0)
  (c,) = cracks.measure(m)
  assert c["length_px"] == pytest.approx(220, rel=0.10)
  assert abs(c["max_width_px"] - 9) <= 1 and abs(c["mean_width_px"] - 6) <= 1


def test_cracks_come_apart_longest_first_and_an_empty_mask_has_none():
  m = _band((200, 200), (100.3, 50.2), 150, 3, 0) | _band((200, 200), (100.3, 150.2), 60, 3, 0)
  got = cracks.measure(m)
  assert [c["crack"] for c in got] == [1, 2] and got[0]["length_px"] > got[1]["length_px"]
  assert got[0]["y"] == pytest.approx(50.2, abs=1) and got[0]["x"] == pytest.approx(100.3, abs=1) and got[0]["length_mm"] is None
  assert cracks.measure(np.zeros((10, 10), bool)) == []
  s = cracks.summary(got)
  assert s["cracks"] == 2 and s["longest_px"] == got[0]["length_px"]


def crack_photo():
  """(a sound 600x400 photo, the same with a dark crack 6 px wide and 400 px long along y = 200.2, the crack's
  exact mask)."""
  from crackjax.data import synthetic

  sound = synthetic.generate(0, 3, 600, crack=False, distractor_prob=0)[0][:400]
  crack = sound.copy()
  band = _band((400, 600), (300.3, 200.2), 400, 6, 0)
  crack[band] = (crack[band] * 0.2).astype(np.uint8)
  return sound, crack, band


def test_predict_writes_masks_at_the_photos_size_and_measures_its_cracks(darkness_run, tmp_path):
  """Through --mode=predict (the no-learning kind): a 600x400 photo with a dark crack 6 px wide and 400 px long
  (at the photo's size; the model works at half) and a sound photo, at a set threshold and mask decision. The
  crack's photo is flagged, its mask is 600x400 and lines up with the crack, cracks.csv measures it (length
  within 10%, width within 1 px; mm at the given scale), its ground-truth mask scores the red; the sound photo is
  passed and carries no red."""
  config, workdir, _ = darkness_run
  folder = tmp_path / "photos"
  folder.mkdir()
  sound, crack, band = crack_photo()
  Image.fromarray(crack).save(folder / "crack.png")
  Image.fromarray(sound).save(folder / "sound.png")
  gts = tmp_path / "gt"
  gts.mkdir()
  Image.fromarray(band.astype(np.uint8) * 255).save(gts / "crack_mask.png")
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(gts / "sound_mask.png")  # not the photo's size: left out, named
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.data.resize = 0.5
    # the machinery under test, not the calibration (of 32 px photos): a threshold between the two photos' scores
    # and the no-learning map's own units (relative darkness: the crack 0.8, the sound surface under 0.4)
    c.predict.update(input=str(folder), mm_per_pixel=0.5, masks=str(gts), threshold=0.4)
    c.mask.update(low=0.5, high=0.6, min_length=20.0)
  out = jobs.predict(c, workdir)
  rows = {os.path.basename(r["file"]): r for r in csv.DictReader(open(out))}
  assert rows["crack.png"]["verdict"] == "crack" and rows["sound.png"]["verdict"] == "good"
  hot = np.asarray(Image.open(os.path.join(os.path.dirname(out), "masks", "crack.png.png")))[..., 3] > 0
  assert hot.shape == (400, 600)
  assert hot[band].mean() > 0.7 and hot[~band].mean() < 0.01
  ys, xs = np.nonzero(hot)
  assert abs(ys.mean() - 200.2) < 1 and xs.min() >= 100 - 2 and xs.max() <= 500 + 2  # aligned with the photo
  assert not (np.asarray(Image.open(os.path.join(os.path.dirname(out), "masks", "sound.png.png")))[..., 3] > 0).any()
  found = [r for r in csv.DictReader(open(os.path.join(os.path.dirname(out), "cracks.csv"))) if r["file"].endswith("crack.png")]
  assert found and float(found[0]["length_px"]) == pytest.approx(400, rel=0.1)
  assert abs(float(found[0]["max_width_px"]) - 6) <= 1 and float(found[0]["length_mm"]) == pytest.approx(
    0.5 * float(found[0]["length_px"]), rel=1e-3
  )
  assert int(rows["crack.png"]["cracks"]) == len(found) and rows["sound.png"]["cracks"] == "0"
  summary = json.load(open(os.path.join(os.path.dirname(out), "summary.json")))
  assert summary["mask_metrics"]["photos"] == 1 and summary["mask_metrics"]["f1"] > 0.7
  assert summary["red"]["passed_without_red"] == 1.0 and summary["mask"]["low"] <= summary["mask"]["high"]
  assert os.path.exists(os.path.join(os.path.dirname(out), "overlays", "crack.png.png"))


def test_scores_within_the_tolerance_forgive_a_mask_two_pixels_off_and_no_more():
  gt = np.zeros((40, 40), bool)
  gt[20, 5:35] = True
  near, far = np.zeros_like(gt), np.zeros_like(gt)
  near[22, 5:35] = True  # two pixels below the crack
  far[23, 5:35] = True  # three
  assert mask_lib.scores_of(mask_lib.counts(near, gt))["f1"] == 0.0
  assert mask_lib.tolerant_scores(mask_lib.tolerant_counts(near, gt)) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
  assert mask_lib.tolerant_scores(mask_lib.tolerant_counts(far, gt))["f1"] == 0.0
  # half the red on the crack, half of it 10 px away: precision 1/2, every crack pixel found: recall 1
  half = near.copy()
  half[32, 5:35] = True
  s = mask_lib.tolerant_scores(mask_lib.tolerant_counts(half, gt))
  assert (s["precision"], s["recall"]) == (0.5, 1.0) and s["f1"] == pytest.approx(2 / 3)
  # no red at all: precision undefined, recall 0
  none = mask_lib.tolerant_scores(mask_lib.tolerant_counts(np.zeros_like(gt), gt))
  assert none == {"precision": None, "recall": 0.0, "f1": None}
