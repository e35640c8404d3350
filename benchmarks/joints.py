"""Joints are not cracks: a jointed surface made from a real one, to count the red a model paints on straight joints.

    python benchmarks/joints.py runs/surfaces/deepcrack runs/surfaces/deepcrack_joints

Draws straight joints (crackjax/synth.py: draw_straight_joint, a formwork joint, saw cut or tile edge: a straight
dark groove across the photo) into SRC's photos and writes an MVTec-layout root OUT:

    OUT/train/good/*      SRC's sound training photos, half of them with a joint: the site's normal
    OUT/test/good/*       SRC's sound test photos, each with a joint
    OUT/test/crack/*      SRC's cracked test photos, each with a joint beside its crack
    OUT/ground_truth/crack/<stem>_mask.png   SRC's crack masks (the joints are not cracks)
    OUT/joints/<stem>_mask.png               each test photo's joint

Then the red on joints is predict's mask "recall" against OUT/joints (`--config.predict.masks=OUT/joints`, share
of joint pixels painted red), and the cracks' masks are scored against OUT/ground_truth/crack as usual. Each
photo's joint is drawn from a generator seeded by its file name: OUT is the same on every machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax import synth  # noqa: E402
from crackjax.data import decode  # noqa: E402


def jointed(path: str, salt: int) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 photo with a joint, uint8 {0, 255} mask of the joint)."""
  rng = np.random.default_rng([zlib.crc32(os.path.basename(path).encode()), salt])
  img, mask = synth.draw_straight_joint(rng, decode.read_image(path).astype(np.float32) / 255.0)
  return (img * 255.0 + 0.5).astype(np.uint8), mask * 255


def write(folder: str, name: str, img: np.ndarray) -> None:
  os.makedirs(folder, exist_ok=True)
  Image.fromarray(img).save(os.path.join(folder, os.path.splitext(name)[0] + ".png"))


def build(src: str, out: str) -> dict:
  if os.path.isdir(out):
    shutil.rmtree(out)
  counts = {}
  for split, share in (("train/good", 0.5), ("test/good", 1.0), ("test/crack", 1.0)):
    folder = os.path.join(src, split)
    names = sorted(f for f in os.listdir(folder) if decode.is_image_file(f)) if os.path.isdir(folder) else []
    for name in names:
      path = os.path.join(folder, name)
      if zlib.crc32(name.encode()) / 2**32 < share:
        img, mask = jointed(path, 0)
        if split.startswith("test"):
          write(os.path.join(out, "joints"), os.path.splitext(name)[0] + "_mask", mask)
      else:
        img = decode.read_image(path)
      write(os.path.join(out, split), name, img)
    counts[split] = len(names)
  gt = os.path.join(src, "ground_truth")
  if os.path.isdir(gt):
    os.symlink(os.path.abspath(gt), os.path.join(out, "ground_truth"))
  return counts


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("src", help="an MVTec-layout root with train/good, test/good and test/crack")
  ap.add_argument("out", help="the jointed root to write")
  args = ap.parse_args()
  counts = build(args.src, args.out)
  print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; joint masks in {args.out}/joints")


if __name__ == "__main__":
  main()
