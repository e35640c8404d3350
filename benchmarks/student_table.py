"""Markdown table, teacher first, of metrics.json in a teacher's and students' workdirs:
python benchmarks/student_table.py TEACHER_WORKDIR STUDENT_WORKDIR..."""

import json
import os
import sys


def fmt(x, spec=".4f"):
  return "-" if x is None else format(x, spec)


def row(workdir: str) -> str | None:
  path = os.path.join(workdir, "metrics.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    m = json.load(f)
  model, im, px, sp = m["model"], m["image"], m.get("pixel", {}), m["speed"]
  if model["kind"] == "teacher":
    what = f"teacher: t_start {model['t_start']}, {model['heal_steps']} step(s) x {model['num_draws']} draw(s)"
  else:
    what = f"student {model['architecture']}" + (f" K={model['stages']}" if model["architecture"] == "coarse_to_fine" else "")
    what += f", {model['target']} targets"
    if model.get("teacher_sampler"):
      what += f", maps by {model['teacher_sampler']} x {model.get('teacher_heal_steps') or 'own'} steps"
    if model.get("n_pool"):
      what += f", pool {model['n_pool']:,}"
  cells = [what, fmt(m.get("val", {}).get("auroc")), fmt(im["auroc"]), fmt(im["ap"]), fmt(im["f1"]), fmt(px.get("auroc"))]
  cells += [fmt(px.get("aupro")), f"{model['params']:,}", fmt(sp["gflops_per_image"], ".3f"), fmt(sp["images_per_second"], ".1f")]
  return "| " + " | ".join(cells) + " |"


def print_table(header: list[str], dirs: list[str], row_fn) -> None:
  """A markdown table: the header, then row_fn(workdir) for every workdir that has results."""
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for d in dirs:
    r = row_fn(d)
    if r:
      print(r)


def main(dirs: list[str]) -> None:
  header = ["model", "val AUROC", "test AUROC", "test AP", "test F1@val thr", "pixel AUROC", "AUPRO", "params", "GFLOP/image"]
  print_table(header + ["images/s"], dirs, row)


if __name__ == "__main__":
  main(sys.argv[1:])
