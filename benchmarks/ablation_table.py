"""Markdown table of every <workdir>/eval/ablation_*/metrics.json: python benchmarks/ablation_table.py WORKDIR"""

import glob
import json
import os
import sys


def fmt(x):
  return "-" if x is None else f"{x:.4f}"


def main(workdir: str) -> None:
  rows = []
  for path in sorted(glob.glob(os.path.join(workdir, "eval", "ablation_*", "metrics.json"))):
    with open(path) as f:
      m = json.load(f)
    name = os.path.basename(os.path.dirname(path))[len("ablation_") :]
    model = m["model"]
    cells = [name, model["t_start"], model["heal_steps"], model["num_draws"], model["residual"], model.get("channels", "mean")]
    cells += [
      model["pooling"],
      f"{model.get('topk_fraction', 0.01):g}",
      f"{model['smoothing_sigma']:g}",
      fmt(m.get("val", {}).get("auroc")),
      fmt(m["image"]["auroc"]),
      fmt(m["image"]["f1"]),
    ]
    cells += [
      fmt(m.get("pixel", {}).get("auroc")),
      fmt(m.get("pixel", {}).get("aupro")),
      f"{m['speed']['images_per_second']:.1f}",
    ]
    rows.append("| " + " | ".join(str(c) for c in cells) + " |")
  header = [
    "setting",
    "t_start",
    "steps",
    "draws",
    "residual",
    "channels",
    "pooling",
    "top-k",
    "sigma",
    "val AUROC",
    "test AUROC",
  ]
  header += ["test F1@val thr", "pixel AUROC", "AUPRO", "images/s"]
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  print("\n".join(rows))


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/ddim_50")
