"""Markdown table of the baselines beside the teacher and student: metrics.json and training.json of each workdir.

python benchmarks/baselines_table.py WORKDIR...

A WORKDIR may be a named evaluation, <run>/eval/<name> (another root scored by that run's model): its training
time is the run's.
"""

import json
import os
import sys

from student_table import fmt, print_table  # same folder: python benchmarks/baselines_table.py


def _load(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def row(workdir: str) -> str | None:
  m = _load(os.path.join(workdir, "metrics.json"))
  if not m:
    return None
  model, im, px, sp = m["model"], m["image"], m.get("pixel", {}), m["speed"]
  kind = model.get("kind", "teacher")
  what = {"teacher": "diffusion teacher", "student": "student", "darkness": "darkness floor (no learning)"}.get(kind, kind)
  if kind == "student":
    what += f" {model.get('architecture', '')}" + (f" K={model['stages']}" if model.get("stages") else "")
  run = _run_dir(workdir)
  seconds = sum(_load(os.path.join(d, "training.json")).get("seconds", 0.0) for d in _training_dirs(run, kind))
  cells = [what, fmt(m.get("val", {}).get("auroc")), fmt(im.get("auroc")), fmt(im.get("ap")), fmt(im.get("f1"))]
  cells += [fmt(px.get("auroc")), fmt(px.get("aupro")), f"{model.get('params', 0):,}"]
  cells += [
    "-" if kind == "darkness" else (fmt(seconds / 60, ".1f") if seconds else "?"),
    fmt(sp.get("images_per_second"), ".1f"),
  ]
  return "| " + " | ".join(cells) + " |"


def _run_dir(path: str) -> str:
  """The run a folder belongs to: <run> for <run>/eval/<name>, else the folder itself."""
  parent = os.path.dirname(os.path.normpath(path))
  return os.path.dirname(parent) if os.path.basename(parent) == "eval" else path


def _training_dirs(workdir: str, kind: str) -> list[str]:
  """The workdir, plus the head's folder for a teacher scored by a head (its training counts too)."""
  cfg = _load(os.path.join(workdir, "config.json"))
  out = [workdir]
  if kind == "teacher" and str(cfg.get("anomaly", {}).get("score", "residual")).startswith("head"):
    out.append(os.path.join(workdir, cfg.get("head", {}).get("name", "head")))
  return out


def main(dirs: list[str]) -> None:
  header = ["model", "val AUROC", "test AUROC", "test AP", "test F1@val thr", "pixel AUROC", "AUPRO", "params"]
  print_table(header + ["training min", "images/s"], dirs, row)


if __name__ == "__main__":
  main(sys.argv[1:])
