"""Markdown table of a sweep (`--mode=sweep`): one row per step count, per sampler the image AUROC (or pixel AUROC
and AUPRO where the root has no good test images) and images/s. python benchmarks/sweep_table.py SWEEP_DIR/sweep.json"""

import json
import sys


def main(path: str) -> None:
  with open(path) as f:
    sweep = json.load(f)
  rows = sweep["rows"]
  samplers = list(dict.fromkeys(r["sampler"] for r in rows))
  by = {(r["sampler"], r["steps"]): r for r in rows}
  image = any(r["image_auroc"] is not None for r in rows)
  pixel = any(r["pixel_auroc"] is not None for r in rows)
  cells = []
  for s in samplers:
    if image:
      cells.append(f"{s} image AUROC")
    if pixel:
      cells += [f"{s} pixel AUROC", f"{s} AUPRO"]
    cells.append(f"{s} images/s")
  print(f"{sweep['root']}, {rows[0]['n_images']} test images, t_start {rows[0]['t_start']}\n")
  print("| steps | " + " | ".join(cells) + " |")
  print("|---|" + "---|" * len(cells))
  fmt = lambda v, f=".4f": "-" if v is None else format(v, f)  # noqa: E731
  for steps in sorted({r["steps"] for r in rows}):
    out = [str(steps)]
    for s in samplers:
      r = by.get((s, steps))
      if image:
        out.append(fmt(r and r["image_auroc"]))
      if pixel:
        out += [fmt(r and r["pixel_auroc"]), fmt(r and r["aupro"])]
      out.append(fmt(r and r["images_per_second"], ".2f"))
    print("| " + " | ".join(out) + " |")


if __name__ == "__main__":
  main(sys.argv[1])
