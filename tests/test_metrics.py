import numpy as np
import pytest
from scipy import ndimage

from crackjax import metrics

S = np.array([0.1, 0.4, 0.35, 0.8])
Y = np.array([0, 0, 1, 1])


def test_auroc_hand_computed():
  # Positive/negative pairs: (0.35 > 0.1), (0.35 < 0.4), (0.8 > both) -> 3 of 4.
  assert metrics.auroc(S, Y) == pytest.approx(0.75)
  assert metrics.auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
  assert metrics.auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
  assert metrics.auroc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # ties count half
  assert np.isnan(metrics.auroc([1, 2], [0, 0]))


def test_average_precision_hand_computed():
  # Descending: 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = 0.5 * 1 + 0.5 * 2/3.
  assert metrics.average_precision(S, Y) == pytest.approx(0.5 + 1 / 3)


def test_f1_max_and_threshold():
  f1, th = metrics.f1_max(S, Y)
  # At 0.35: tp 2, fp 1 -> P 2/3, R 1 -> F1 0.8; at 0.8: P 1, R 0.5 -> 0.667.
  assert f1 == pytest.approx(0.8) and th == pytest.approx(0.35)


def test_confusion_at_threshold():
  r = metrics.at_threshold(S, Y, 0.35)
  assert r["confusion"] == {"tp": 2, "fn": 0, "fp": 1, "tn": 1}
  assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 1.0 and r["miss_rate"] == 0.0
  assert r["false_alarm_rate"] == 0.5 and r["f1"] == pytest.approx(0.8)


def test_roc_curve_endpoints():
  fpr, tpr, _ = metrics.roc_curve(S, Y)
  assert (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)
  assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
  assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.auroc(S, Y))


def test_aupro_perfect_inverted_and_partial():
  mask = np.zeros((20, 20), np.uint8)
  mask[2:6, 2:6] = 1  # region A: 16 px
  mask[10:12, 10:18] = 1  # region B: 16 px
  assert metrics.aupro([mask.astype(float)], [mask]) == pytest.approx(1.0)
  assert metrics.aupro([1.0 - mask], [mask]) == pytest.approx(0.0, abs=1e-6)
  # Region A found, region B invisible (scored like the background): per-region overlap is 1/2 until the
  # background is flagged, i.e. PRO = 0.5 over the whole FPR range up to 0.3.
  half = np.zeros((20, 20))
  half[2:6, 2:6] = 1.0
  half += np.linspace(0, 0.01, 400).reshape(20, 20)  # break ties in the background
  half[10:12, 10:18] = 0.0
  assert metrics.aupro([half], [mask]) == pytest.approx(0.5, abs=0.05)


def test_pixel_metrics_keys():
  m = np.zeros((8, 8), np.uint8)
  m[3, :] = 1
  out = metrics.pixel_metrics([m * 0.9 + 0.05], [m])
  assert set(out) == {"auroc", "aupro", "ap", "f1_max"} and out["auroc"] == 1.0 and out["ap"] == 1.0


# ------------------------------------------------------------------------ brute force, ties included


def _cases(n_cases=30):
  rng = np.random.default_rng(0)
  for _ in range(n_cases):
    n = int(rng.integers(4, 30))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    yield rng.integers(0, 5, n) / 4.0, labels  # five score levels: many ties


def _at(scores, labels, t):
  pred = scores >= t
  tp, fp = (pred & (labels == 1)).sum(), (pred & (labels == 0)).sum()
  return tp, fp, tp / max(tp + fp, 1), tp / (labels == 1).sum()


def test_auroc_equals_the_pair_count_with_ties_half():
  for s, y in _cases():
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert metrics.auroc(s, y) == pytest.approx(brute, abs=1e-12)


def test_average_precision_and_f1_max_equal_their_threshold_definitions():
  for s, y in _cases():
    ts = np.unique(s)[::-1]  # every distinct score, high to low; a tie enters all at once
    ap, prev_recall, best, best_t = 0.0, 0.0, -1.0, None
    for t in ts:
      _, _, precision, recall = _at(s, y, t)
      ap += (recall - prev_recall) * precision
      prev_recall = recall
      f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
      if f1 > best:
        best, best_t = f1, t
    assert metrics.average_precision(s, y) == pytest.approx(ap, abs=1e-12)
    f1m, th = metrics.f1_max(s, y)
    assert f1m == pytest.approx(best, abs=1e-12) and th == best_t


def test_aupro_equals_the_exact_integral_on_a_small_case():
  """Every distinct map value as a threshold: FPR over good pixels, mean overlap per region, trapezoid up to 0.3
  (interpolated there), divided by 0.3."""
  rng = np.random.default_rng(3)
  masks, maps = [], []
  for _ in range(2):
    m = np.zeros((12, 12), np.uint8)
    m[2:5, 3:9] = 1
    m[8:11, 8:10] = 1
    masks.append(m)
    maps.append(np.round(rng.random((12, 12)) + 0.6 * m, 2))  # regions brighter on average; ties from rounding
  good = np.concatenate([a[b == 0] for a, b in zip(maps, masks)])
  regions = [(i, r) for i, m in enumerate(masks) for r in (ndimage.label(m)[0] == k for k in range(1, ndimage.label(m)[1] + 1))]
  fpr, pro = [0.0], [0.0]
  for t in np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]:
    fpr.append((good >= t).mean())
    pro.append(np.mean([(maps[i][r] >= t).mean() for i, r in regions]))
  fpr, pro = np.array(fpr), np.array(pro)
  j = np.flatnonzero(fpr > 0.3)[0]
  p_lim = pro[j - 1] + (pro[j] - pro[j - 1]) * (0.3 - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
  exact = np.trapezoid(np.r_[pro[:j], p_lim], np.r_[fpr[:j], 0.3]) / 0.3
  assert metrics.aupro(maps, masks) == pytest.approx(exact, abs=2e-3)


def test_the_paired_bootstrap_knows_a_sure_difference_from_none():
  """metrics.paired_bootstrap: the same scores differ by 0 in every resample (share <= 0 is 1); a perfect
  score against a reversed one differs by 1 in every resample (share 0); each resample keeps both classes, even
  with one photo of each."""
  labels = np.array([0, 0, 0, 1, 1, 1])
  s = np.array([0.1, 0.5, 0.3, 0.4, 0.9, 0.2])
  same = metrics.paired_bootstrap(labels, s, s, n=200)
  assert same == {"diff": 0.0, "low": 0.0, "high": 0.0, "p_not_better": 1.0}
  sure = metrics.paired_bootstrap(labels, -labels.astype(float), labels.astype(float), n=200)
  assert sure == {"diff": 1.0, "low": 1.0, "high": 1.0, "p_not_better": 0.0}
  one = metrics.paired_bootstrap(np.array([0, 1]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), n=200)
  assert one["diff"] == -1.0 and one["p_not_better"] == 1.0
  y = labels.astype(float)
  mean = metrics.mean_over_sets([(labels, -y, y), (labels, s, s)], n=200)  # +1 and 0 in every resample
  assert mean == {"diff": 0.5, "low": 0.5, "high": 0.5, "p_not_better": 0.0}


def test_a_val_of_sound_photos_only_chooses_its_threshold_against_their_synthetic_cracks(tmp_path):
  """thresholds.choose: val's real cracks where it has any; else its sound photos against their synthetic-cracked
  copies (the F1-max threshold); else the percentile of the sound scores."""
  from crackjax import thresholds

  good = np.array([0.1, 0.2, 0.3, 0.4])
  labels = np.zeros(4, int)
  synthetic = np.array([0.35, 0.8, 0.9])  # at 0.35: F1 6/7 (one sound photo above it) beats 0.8's 4/5
  th, src = thresholds.choose(good, labels, percentile=99, workdir=str(tmp_path), synthetic=synthetic)
  assert (th, src) == (0.35, "val_synthetic_f1_max")
  th, src = thresholds.choose(good, labels, percentile=99, workdir=str(tmp_path))
  assert src == "val_good_p99" and th == pytest.approx(np.percentile(good, 99))
  real = np.array([0, 0, 0, 1])  # real cracks win over synthetic ones
  assert thresholds.choose(good, real, percentile=99, workdir=str(tmp_path), synthetic=np.array([9.0]))[1] == "val_f1_max"
