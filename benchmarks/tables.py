"""Markdown tables of what the runs wrote (metrics.json, training.json, sweep.json, predict's files), one kind each:

python benchmarks/tables.py students TEACHER_WORKDIR STUDENT_WORKDIR...     teacher first, then its students
python benchmarks/tables.py baselines WORKDIR...       a run's own evaluation, or a named one (<run>/eval/<name>)
python benchmarks/tables.py sweep SWEEP_DIR/sweep.json       one row per step count, per sampler
python benchmarks/tables.py surfaces CP_WORKDIR PREFIX SURFACE...    benchmarks/surfaces.sh's per-surface table
"""

from __future__ import annotations

import csv
import json
import os
import sys


def fmt(x, spec=".4f"):
  return "-" if x is None else format(x, spec)


def load(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def table(header: list[str], rows: list[list[str] | None]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows if r])


def describe(model: dict) -> str:
  kind = model.get("kind", "teacher")
  if kind == "teacher":
    return f"teacher: t_start {model['t_start']}, {model['heal_steps']} step(s) x {model['num_draws']} draw(s)"
  if kind != "student":
    return {"darkness": "darkness floor (no learning)"}.get(kind, model.get("description", kind))
  what = f"student {model['architecture']}" + (f" K={model['stages']}" if model["architecture"] == "coarse_to_fine" else "")
  what += f", {model['target']} targets"
  if model.get("teacher_sampler"):
    what += f", maps by {model['teacher_sampler']} x {model.get('teacher_heal_steps') or 'own'} steps"
  return what + (f", pool {model['n_pool']:,}" if model.get("n_pool") else "")


def run_dir(path: str) -> str:
  """The run a folder belongs to: <run> for <run>/eval/<name>, else the folder itself."""
  parent = os.path.dirname(os.path.normpath(path))
  return os.path.dirname(parent) if os.path.basename(parent) == "eval" else path


def model_row(workdir: str, minutes: bool) -> list[str] | None:
  m = load(os.path.join(workdir, "metrics.json"))
  if not m:
    return None
  model, im, px, sp = m["model"], m["image"], m.get("pixel", {}), m["speed"]
  cells = [describe(model), fmt(m.get("val", {}).get("auroc")), fmt(im["auroc"]), fmt(im["ap"]), fmt(im["f1"])]
  cells += [fmt(px.get("auroc")), fmt(px.get("aupro")), f"{model.get('params', 0):,}"]
  if minutes:
    seconds = load(os.path.join(run_dir(workdir), "training.json")).get("seconds")
    cells.append(fmt(seconds / 60, ".1f") if seconds else "-")
  else:
    cells.append(fmt(sp.get("gflops_per_image"), ".3f"))
  return cells + [fmt(sp.get("images_per_second"), ".1f")]


def models(dirs: list[str], minutes: bool) -> str:
  header = ["model", "val AUROC", "test AUROC", "test AP", "test F1@val thr", "pixel AUROC", "AUPRO", "params"]
  header += ["training min" if minutes else "GFLOP/image", "images/s"]
  return table(header, [model_row(d, minutes) for d in dirs])


def sweep(path: str) -> str:
  s = load(path)
  rows = s["rows"]
  samplers = list(dict.fromkeys(r["sampler"] for r in rows))
  by = {(r["sampler"], r["steps"]): r for r in rows}
  image, pixel = any(r["image_auroc"] is not None for r in rows), any(r["pixel_auroc"] is not None for r in rows)
  header = ["steps"]
  for name in samplers:
    header += [f"{name} image AUROC"] * image + [f"{name} pixel AUROC", f"{name} AUPRO"] * pixel + [f"{name} images/s"]
  out = []
  for steps in sorted({r["steps"] for r in rows}):
    cells = [str(steps)]
    for name in samplers:
      r = by.get((name, steps)) or {}
      cells += [fmt(r.get("image_auroc"))] * image + [fmt(r.get("pixel_auroc")), fmt(r.get("aupro"))] * pixel
      cells.append(fmt(r.get("images_per_second"), ".2f"))
    out.append(cells)
  return f"{s['root']}, {rows[0]['n_images']} test images, t_start {rows[0]['t_start']}\n\n" + table(header, out)


def predicted(folder: str) -> dict:
  """A predict run on a surface's test/ folder: the red masks against ground truth, cracked photos flagged, sound
  photos (test/good) without a red pixel."""
  summary = load(os.path.join(folder, "summary.json"))
  path = os.path.join(folder, "predictions.csv")
  if not summary or not os.path.exists(path):
    return {}
  with open(path, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r["score"]]
  crack = [r for r in rows if f"{os.sep}crack{os.sep}" in r["file"]]
  good = [r for r in rows if f"{os.sep}good{os.sep}" in r["file"]]
  return {
    "threshold": summary.get("threshold"),
    "mask": summary.get("mask_metrics", {}),
    "flagged": f"{sum(r['verdict'] == 'crack' for r in crack)}/{len(crack)}",
    "no_red": f"{sum(float(r['red_share']) == 0 for r in good)}/{len(good)}",
  }


def surface_row(label: str, metrics_dir: str, predict_dir: str, train_dir: str | None, source: str) -> list[str]:
  """One model on a surface: image AUROC (its evaluation on the surface's test), and what predict wrote at the
  threshold chosen on `source`'s val."""
  m, p = load(os.path.join(metrics_dir, "metrics.json")), predicted(predict_dir)
  mk, near = p.get("mask", {}), p.get("mask", {}).get("within_2px", {})
  record = load(os.path.join(train_dir, "training.json")) if train_dir else {}
  seconds = record.get("seconds")
  if record.get("val"):  # early stopping: which checkpoint the model is
    label += f" (kept step {record['steps']}" + (f", stopped at {record['stopped_at']})" if record.get("stopped_at") else ")")
  return [
    label, fmt(m.get("image", {}).get("auroc")), f"{fmt(p.get('threshold'), '.3f')}, {source}",
    " / ".join(fmt(mk.get(k), ".2f") for k in ("precision", "recall", "f1")),
    " / ".join(fmt(near.get(k), ".2f") for k in ("precision", "recall", "f1")),
    p.get("flagged", "-"), p.get("no_red", "-"), fmt(seconds / 60, ".1f") if seconds else "-",
  ]  # fmt: skip


def surfaces(cp: str, prefix: str, names: list[str]) -> str:
  header = ["model", "image AUROC", "threshold, chosen on", "red mask P / R / F1", "within 2 px P / R / F1"]
  header += ["cracked photos flagged", "sound photos without red", "training min"]
  cp_rows = []
  for label, path in (("teacher", cp), ("blur", f"{prefix}/cp_blur"), ("darkness", f"{prefix}/cp_darkness")):
    m, seconds = load(os.path.join(path, "metrics.json")), load(os.path.join(path, "training.json")).get("seconds")
    if not m:
      continue
    image, good = m["image"], m.get("mask_on_good", {})
    passed = good.get("n_passed", 0)  # concrete_pavement's sound test photos that passed, and how many carry no red
    no_red = (
      f"{round(good['passed_without_red'] * passed)}/{passed} passed" if good.get("passed_without_red") is not None else "-"
    )
    cp_rows.append([
      label, fmt(image.get("auroc")), f"{fmt(image.get('threshold'), '.3f')}, its val", "-", "-",
      f"recall {fmt(image.get('recall'), '.3f')}", no_red, fmt(seconds / 60, ".1f") if seconds else "-",
    ])  # fmt: skip
  out = ["concrete_pavement\n", table(header, cp_rows)]
  for s in names:
    own = f"{prefix}/{s}_teacher"
    rows = [
      surface_row("configs/new_surface.py on its own photos", own, f"{own}/predict/test", own, "own val, synthetic cracks"),
      surface_row("concrete_pavement teacher, zero-shot", f"{cp}/eval/{s}", f"{cp}/predict/{s}", None, "concrete_pavement val"),
    ]
    for kind in ("blur", "darkness"):
      own_kind, cp_kind = f"{prefix}/{s}_{kind}", f"{prefix}/cp_{kind}"
      rows.append(surface_row(f"{kind}, its own photos", own_kind, f"{own_kind}/predict/test", None, "own val, synthetic cracks"))
      rows.append(
        surface_row(f"{kind}, zero-shot", f"{cp_kind}/eval/{s}", f"{cp_kind}/predict/{s}", None, "concrete_pavement val")
      )
    out += [f"\n{s}\n", table(header, rows)]
  return "\n".join(out)


def main(argv: list[str]) -> None:
  kind, args = argv[0], argv[1:]
  if kind == "students":
    print(models(args, minutes=False))
  elif kind == "baselines":
    print(models(args, minutes=True))
  elif kind == "sweep":
    print(sweep(args[0]))
  elif kind == "surfaces":
    print(surfaces(args[0], args[1], args[2:]))
  else:
    raise SystemExit(f"error: unknown table {kind!r}: students, baselines, sweep or surfaces")


if __name__ == "__main__":
  main(sys.argv[1:])
