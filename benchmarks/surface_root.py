"""A surface's root with sound test photos: part of train/good held out as test/good, so that a root whose test
split holds cracked photos only (DeepCrack, SUT) gets an image AUROC and a count of red on sound photos.

    python benchmarks/surface_root.py ../shared/data/sut runs/surfaces/sut

OUT mirrors SRC with symbolic links to its files (nothing is copied): train/good less the held-out photos,
test/good the held-out photos (the crops of every source photo whose name hashes below --fraction, 20% by
default: no photo has crops on both sides), and SRC's test/<defect>/, val/, ground_truth/ and unlabeled/ as they
are. The split depends on the file names only, so it is the same on every machine. An existing OUT is rebuilt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax.data import decode  # noqa: E402


def source(name: str) -> str:
  """A crop's source photo: its name less the crop's offset ('<stem>_<y>_<x>.png', shared/data/README.md)."""
  parts = os.path.splitext(name)[0].split("_")
  return "_".join(parts[:-2]) if len(parts) > 2 and all(p.isdigit() for p in parts[-2:]) else name


def held_out(name: str, fraction: float) -> bool:
  """By the source photo's name, so that no photo has crops on both sides."""
  return zlib.crc32(source(name).encode()) / 2**32 < fraction


def link(src: str, dst: str) -> None:
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  os.symlink(os.path.abspath(src), dst)


def build(src: str, out: str, fraction: float) -> dict:
  good = os.path.join(src, "train", "good")
  if not os.path.isdir(good):
    raise SystemExit(f"error: {good} is not a folder: the surface's sound photos go in SRC/train/good")
  if os.path.isdir(out):
    shutil.rmtree(out)
  counts = {"train/good": 0, "test/good": 0}
  for f in sorted(os.listdir(good)):
    if not decode.is_image_file(f):
      continue
    split = "test/good" if held_out(f, fraction) else "train/good"
    link(os.path.join(good, f), os.path.join(out, split, f))
    counts[split] += 1
  for entry in sorted(os.listdir(src)):  # everything else as it is
    if entry == "train":
      continue
    if entry == "test":
      for defect in sorted(os.listdir(os.path.join(src, "test"))):
        folder = os.path.join(src, "test", defect)
        for f in sorted(os.listdir(folder)):  # file by file: predict walks folders without following links
          link(os.path.join(folder, f), os.path.join(out, "test", defect, f))
        counts[f"test/{defect}"] = counts.get(f"test/{defect}", 0) + len(os.listdir(folder))
    elif os.path.isdir(os.path.join(src, entry)):
      link(os.path.join(src, entry), os.path.join(out, entry))
  return counts


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("src", help="an MVTec-layout root with train/good")
  ap.add_argument("out", help="the root to write (symbolic links)")
  ap.add_argument("--fraction", type=float, default=0.2, help="share of train/good held out as test/good")
  args = ap.parse_args()
  if not 0 < args.fraction < 1:
    raise SystemExit(f"error: --fraction must be in (0, 1), got {args.fraction}")
  counts = build(args.src, args.out, args.fraction)
  print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
  main()
