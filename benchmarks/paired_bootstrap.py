"""How sure is a difference in image AUROC between two runs scored on the same photos? A paired bootstrap.

Takes two score files of the same split (a run's scores.csv or val_scores.csv: file, label, score), resamples the
photos with replacement, cracked and good separately (each resample keeps the split's counts), and prints AUROC(B) -
AUROC(A) on the photos as they are, its 95% interval over the resamples, and the share of resamples in which B is not
better (<= 0): the figure a selection rule can ask to be below 0.05.

  python benchmarks/paired_bootstrap.py runs/cp/eval/syncracks_s1_line6/scores.csv \
    runs/cp/eval/syncracks_s1_line10/scores.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax import metrics  # noqa: E402


def read_scores(path: str) -> dict[str, tuple[int, float]]:
  with open(path, newline="") as f:
    return {r["file"]: (int(r["label"]), float(r["score"])) for r in csv.DictReader(f)}


def pair(a: dict[str, tuple[int, float]], b: dict[str, tuple[int, float]]):
  """Two read_scores() dicts of the same photos -> (labels, scores a, scores b), in file order; ValueError if they
  score different photos or disagree on a label."""
  if set(a) != set(b):
    raise ValueError(f"the two runs score different photos ({len(set(a) ^ set(b))} not in both)")
  files = sorted(a)
  if any(a[f][0] != b[f][0] for f in files):
    raise ValueError("the two runs disagree on a label")
  return np.array([a[f][0] for f in files]), np.array([a[f][1] for f in files]), np.array([b[f][1] for f in files])


def differences(labels: np.ndarray, a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0):
  """AUROC(b) - AUROC(a) on the photos as they are, and [n] over stratified resamples of them (each keeps the
  split's counts of cracked and good photos)."""
  labels = np.asarray(labels)
  pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
  if not len(pos) or not len(neg):
    raise ValueError("paired_bootstrap needs cracked and good photos")
  rng = np.random.default_rng(seed)
  d = np.empty(n)
  for r in range(n):
    i = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
    d[r] = metrics.auroc(b[i], labels[i]) - metrics.auroc(a[i], labels[i])
  return metrics.auroc(b, labels) - metrics.auroc(a, labels), d


def summary(diff: float, d: np.ndarray) -> dict:
  """{'diff', 'low', 'high', 'p_not_better'}: the 95% interval and the share of resamples with a difference <= 0."""
  low, high = np.percentile(d, [2.5, 97.5])
  return {"diff": float(diff), "low": float(low), "high": float(high), "p_not_better": float((d <= 0).mean())}


def paired_bootstrap(labels: np.ndarray, a: np.ndarray, b: np.ndarray, *, n: int = 2000, seed: int = 0) -> dict:
  """AUROC(b) - AUROC(a) on the same photos, and over n stratified resamples of them: summary()'s dict."""
  return summary(*differences(labels, a, b, n=n, seed=seed))


def mean_over_sets(sets: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, n: int = 2000, seed: int = 0) -> dict:
  """The mean over sets of (labels, a, b) of AUROC(b) - AUROC(a), each set resampled on its own: summary()'s dict.
  Several small sets together resolve what each alone cannot."""
  if not sets:
    raise ValueError("mean_over_sets needs at least one set")
  parts = [differences(y, a, b, n=n, seed=seed + k) for k, (y, a, b) in enumerate(sets)]
  return summary(float(np.mean([p[0] for p in parts])), np.mean([p[1] for p in parts], axis=0))


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("a", help="the first run's scores.csv (the default)")
  ap.add_argument("b", help="the second run's scores.csv on the same photos (the candidate)")
  ap.add_argument("--n", type=int, default=2000, help="resamples")
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  try:
    labels, sa, sb = pair(read_scores(args.a), read_scores(args.b))
  except ValueError as e:
    sys.exit(f"{args.a} and {args.b}: {e}")
  try:
    out = paired_bootstrap(labels, sa, sb, n=args.n, seed=args.seed)
  except ValueError as e:
    sys.exit(f"{args.a}: {e}")
  print(
    f"{len(labels)} photos ({int(labels.sum())} cracked): AUROC B - A = {out['diff']:+.5f}, "
    f"95% interval [{out['low']:+.5f}, {out['high']:+.5f}], share of resamples <= 0: {out['p_not_better']:.3f}"
  )


if __name__ == "__main__":
  main()
