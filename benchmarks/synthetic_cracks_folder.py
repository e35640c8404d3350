"""Writes an MVTec-layout folder of a root's own normal val photos, half of them with a synthetic crack drawn in and
its exact mask: pixel masks the project may choose settings on (no real crack label), for the localization map.

    python benchmarks/synthetic_cracks_folder.py ../shared/data/concrete_pavement runs/cp_syncracks
    python main.py --config=configs/ddim_50.py:data=../shared/data/concrete_pavement --workdir=runs/cp --mode=evaluate \
      --config.eval.root=runs/cp_syncracks --config.eval.name=syncracks

The cracks are the head's model (crackjax/synth.py: draw_fine_crack), from faint sub-pixel hairlines to dark cracks
`--max_width` pixels wide at the photo's own resolution (log-uniform), and a share `--p_gap` of gaps wider than the
photo, with spalled edges. `--p_negative` gives that share of all photos, good and cracked, one hard negative of
crackjax/synth.py first (stain, water mark, shadow, pits, joint, paint, rough patch), which stays normal in the
masks. Photos from ROOT/val/good by default (never trained on); the even-numbered ones stay good
(test/good), the odd-numbered ones get a crack (test/crack, ground_truth/crack/<stem>_mask.png); train/good holds
the good half again, so the folder is a valid root (its val is then 10% of those, for an evaluation's threshold).
Deterministic in --seed.

`--source=train/good --start=S --count=N` takes the N photos from the S-th (sorted by name) of another normal
split instead: a selection set larger than val/good's 200, and two folders from disjoint slices share no photo, so
a bootstrap may treat them as independent. Those photos were in the teacher's training set (its 32x32 crops), which
a comparison of two scores of the same teacher shares between both arms (docs/research_log.md).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crackjax import synth  # noqa: E402
from crackjax.data import decode  # noqa: E402


def write_folder(
  root: str,
  out: str,
  *,
  seed: int = 0,
  max_width: float = 24.0,
  p_gap: float = 0.05,
  p_negative: float = 0.0,
  source: str = "val/good",
  start: int = 0,
  count: int = 0,
  persistent: bool = False,
) -> dict:
  """Writes `out` from root/<source>'s photos start .. start + count (count 0: to the end); returns {'good': n,
  'crack': n}."""
  src = os.path.join(root, source)
  if not os.path.isdir(src):
    raise FileNotFoundError(f"{src}: no {source} folder to take normal photos from")
  if start < 0 or count < 0:
    raise ValueError(f"--start and --count must be >= 0, got {start} and {count}")
  names = sorted(n for n in os.listdir(src) if decode.is_image_file(n))
  names = names[start : start + count] if count else names[start:]
  if len(names) < 2:
    raise ValueError(f"{src}: needs at least 2 images from photo {start} on, found {len(names)}")
  for d in ("train/good", "test/good", "test/crack", "ground_truth/crack"):
    os.makedirs(os.path.join(out, d), exist_ok=True)
  counts = {"good": 0, "crack": 0}
  for i, name in enumerate(names, start):
    try:
      img = decode.read_image(os.path.join(src, name))
    except decode.BadImageError as e:
      print(f"{os.path.join(src, name)}: skipped ({e})")
      continue
    stem = os.path.splitext(name)[0]
    neg = np.random.default_rng([seed, i, 1])  # its own stream: the cracks of p_negative = 0 stay as they were
    if neg.random() < p_negative:  # a stain, water mark, shadow, pits, joint, paint or rough patch: still normal
      img = (synth.draw_negative(neg, img.astype(np.float32) / 255.0)[0] * 255.0 + 0.5).astype(np.uint8)
    if i % 2 == 0:
      for d in ("train/good", "test/good"):
        Image.fromarray(img).save(os.path.join(out, d, stem + ".png"))
      counts["good"] += 1
      continue
    rng = np.random.default_rng([seed, i])
    cracked, mask = synth.draw_fine_crack(
      rng, img.astype(np.float32) / 255.0, width=(0.4, max_width), p_gap=p_gap, persistent=persistent
    )
    Image.fromarray((cracked * 255.0 + 0.5).astype(np.uint8)).save(os.path.join(out, "test/crack", stem + ".png"))
    Image.fromarray(mask * 255).save(os.path.join(out, "ground_truth/crack", stem + "_mask.png"))
    counts["crack"] += 1
  return counts


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("root", help="an MVTec-layout root with val/good (or --source)")
  ap.add_argument("out", help="the folder to write")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--max_width", type=float, default=24.0, help="widest crack, pixels at the photos' resolution")
  ap.add_argument("--p_gap", type=float, default=0.05, help="share of cracks that are gaps wider than the photo")
  ap.add_argument(
    "--p_negative", type=float, default=0.0, help="share of photos (good and cracked) given a hard negative of synth.py"
  )
  ap.add_argument("--source", default="val/good", help="the normal split the photos come from, under ROOT")
  ap.add_argument("--start", type=int, default=0, help="the first photo taken (sorted by name)")
  ap.add_argument("--count", type=int, default=0, help="how many photos (0: all from --start on)")
  ap.add_argument(
    "--walk", choices=("drift", "persistent"), default="drift",
    help="the crack's path: 'drift' (the head's walk, built for 32 px crops: curls at photo size) or 'persistent' "
    "(keeps its course across the photo, synth._fine_walk)",
  )  # fmt: skip
  args = ap.parse_args(argv)
  try:
    counts = write_folder(
      args.root, args.out, seed=args.seed, max_width=args.max_width, p_gap=args.p_gap, p_negative=args.p_negative,
      source=args.source, start=args.start, count=args.count, persistent=args.walk == "persistent",
    )  # fmt: skip
  except (FileNotFoundError, ValueError) as e:
    sys.exit(str(e))
  print(
    f"{args.out}: {counts['good']} good and {counts['crack']} cracked test images with masks, from "
    f"{os.path.join(args.root, args.source)}"
  )
  return counts


if __name__ == "__main__":
  main()
