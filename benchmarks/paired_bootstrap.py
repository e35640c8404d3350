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

from crackjax.metrics import paired_bootstrap  # noqa: E402


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
