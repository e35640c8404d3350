"""One setting against the default, on val and on synthetic-crack folders, with a paired bootstrap: the evidence a
selection rule written before the runs asks for, in one command.

  python benchmarks/selection.py --name=line10 --set=anomaly.line_sigma=10

scores a trained teacher (`--workdir`, runs/cp) through main.py `--mode=evaluate` twice per set, as it is (name
`default`) and with the `--set` overrides (`--name`), or the candidate from another trained teacher
(`--candidate_workdir`, e.g. one trained at another `data.resize`, with the `--set` overrides): on the root's val
split and on each `--folders` folder's test split (written by benchmarks/synthetic_cracks_folder.py; its masks give
pixel AUPRO). A finished evaluation is not
run again, so a killed run resumes and the default is scored once for all candidates; each is stamped
(`selection.json`) with the score settings it ran with (the config's anomaly and sampler sections as `:data=ROOT`
resolves them, and the overrides), and one whose stamp differs from today's, e.g. after the default changed, is
moved aside (`<dir>.stale<k>`) and scored again, never compared as if it were today's default.
Then it prints, per set, image AUROC of both, the paired stratified bootstrap of the difference
(benchmarks/paired_bootstrap.py) and pixel AUPRO where the set has masks, and a last row, the mean over the folders
(each resampled on its own), which resolves what one folder alone cannot. The default folders are the two of 2026-12-05
of 1,000 train/good photos each, with persistent cracks and none shared (WRITE says how to write them). Only val
and synthetic folders: test is never scored here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.paired_bootstrap import mean_over_sets, pair, paired_bootstrap, read_scores  # noqa: E402
from crackjax import metrics  # noqa: E402

FOLDERS = "runs/cp_syncracks_ptr,runs/cp_syncracks_neg_ptr"  # 2026-12-05: 1,000 photos each, none shared
WRITE = {  # how the default folders are written (benchmarks/synthetic_cracks_folder.py ROOT FOLDER ...)
  "runs/cp_syncracks_ptr": "--source=train/good --start=0 --count=1000 --seed=4 --walk=persistent",
  "runs/cp_syncracks_neg_ptr": "--source=train/good --start=1000 --count=1000 --seed=5 --p_negative=0.5 --walk=persistent",
}
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def data_config(path: str, root: str):
  """The config file at `path` (configs/ddim_50.py) as `:data=root` resolves it: the real-data score's settings."""
  spec = importlib.util.spec_from_file_location("cfg", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(f"data={root}")


def eval_name(set_name: str, name: str) -> str:
  return f"sel_{set_name}_{name}"


def set_name_of(folder: str | None) -> str:
  """'val' for the root's val split (None), else the folder's own name."""
  return "val" if folder is None else os.path.basename(os.path.normpath(folder))


def sets_of(folders: list[str]) -> list[tuple[str, str | None]]:
  """[(set name, folder or None for the root's val)]"""
  return [(set_name_of(f), f) for f in [None, *folders]]


def command(config: str, root: str, workdir: str, folder: str | None, name: str, overrides: list[str]) -> list[str]:
  """main.py's command line for one evaluation: val only (folder None) or a folder's test split."""
  set_name = set_name_of(folder)
  cmd = [sys.executable, os.path.join(REPO, "main.py"), f"--config={config}:data={root}", f"--workdir={workdir}"]
  cmd += ["--mode=evaluate", f"--config.eval.name={eval_name(set_name, name)}"]
  cmd += ["--config.eval.test=False"] if folder is None else [f"--config.eval.root={folder}"]
  return cmd + [f"--config.{o}" for o in overrides]


def stamp(config: str, root: str, overrides: list[str]) -> dict:
  """The settings an evaluation runs with: the score's config sections as `:data=root` resolves them, and the
  overrides on top (as JSON would store them)."""
  c = data_config(config, root)
  return json.loads(json.dumps({"anomaly": c.anomaly.to_dict(), "sampler": c.sampler.to_dict(), "overrides": overrides}))


def _behaviour(st: dict) -> dict:
  """A stamp without the fields at their LEGACY value (config.without_legacy)."""
  from crackjax.config import without_legacy

  return {**st, **{sec: without_legacy(sec, st[sec]) for sec in ("anomaly", "sampler") if isinstance(st.get(sec), dict)}}


def needs_scoring(d: str, want: dict) -> bool:
  """False when `d` holds a finished evaluation stamped `want` (fields at their LEGACY value aside: a field added
  since, at the value that keeps the old behaviour, does not make it stale); a finished one with another stamp (or
  none) is moved aside to `d.stale<k>`, never overwritten."""
  if not os.path.exists(os.path.join(d, "metrics.json")):
    return True
  try:
    with open(os.path.join(d, "selection.json")) as f:
      if _behaviour(json.load(f)) == _behaviour(want):
        return False
  except (OSError, ValueError):
    pass
  k = 1
  while os.path.exists(f"{d}.stale{k}"):
    k += 1
  os.rename(d, f"{d}.stale{k}")
  print(f"{d}: scored with other settings than today's; moved to {d}.stale{k}, scoring again", flush=True)
  return True


def summarize(
  workdir: str, sets: list[tuple[str, str | None]], name: str, *, n: int = 2000, candidate_workdir: str = ""
) -> list[dict]:
  """Per set: AUROC of the default and of `name`, the bootstrap of their difference, pixel AUPRO where present.
  The candidate's evaluations are read from `candidate_workdir` where given (another trained teacher)."""
  rows, folder_scores = [], []
  for set_name, folder in sets:
    wd = {"default": workdir, name: candidate_workdir or workdir}
    runs = {k: os.path.join(wd[k], "eval", eval_name(set_name, k)) for k in ("default", name)}
    csv = "val_scores.csv" if folder is None else "scores.csv"
    try:
      labels, sa, sb = pair(*(read_scores(os.path.join(runs[k], csv)) for k in ("default", name)))
    except ValueError as e:
      raise ValueError(f"{set_name}: {e}") from None
    boot = paired_bootstrap(labels, sa, sb, n=n)
    aupro = {}
    for k, d in runs.items():
      with open(os.path.join(d, "metrics.json")) as f:
        aupro[k] = json.load(f).get("pixel", {}).get("aupro")
    rows.append({
      "set": set_name, "auroc_a": metrics.auroc(sa, labels), "auroc_b": metrics.auroc(sb, labels),
      "aupro_default": aupro["default"], "aupro": aupro[name], **boot,
    })  # fmt: skip
    if folder is not None:
      folder_scores.append((labels, sa, sb))
  if len(folder_scores) > 1:  # each folder resampled on its own, the differences averaged
    per_folder = [r for r, (_, folder) in zip(rows, sets) if folder is not None]
    rows.append({
      "set": "folders (mean)", "auroc_a": float(np.mean([r["auroc_a"] for r in per_folder])),
      "auroc_b": float(np.mean([r["auroc_b"] for r in per_folder])), "aupro_default": None,
      "aupro": None, **mean_over_sets(folder_scores, n=n),
    })  # fmt: skip
  return rows


def table(rows: list[dict], name: str) -> str:
  out = [f"| set | default AUROC | {name} AUROC | difference | 95% interval | share <= 0 | AUPRO default / {name} |"]
  out.append("|---|---|---|---|---|---|---|")
  for r in rows:
    ap = "-" if r["aupro"] is None else f"{r['aupro_default']:.4f} / {r['aupro']:.4f}"
    out.append(
      f"| {r['set']} | {r['auroc_a']:.5f} | {r['auroc_b']:.5f} | {r['diff']:+.5f} | [{r['low']:+.5f}, {r['high']:+.5f}] "
      f"| {r['p_not_better']:.3f} | {ap} |"
    )
  return "\n".join(out)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--name", required=True, help="the candidate's name in the eval folders (not 'default')")
  ap.add_argument("--set", action="append", default=[], help="a config override, e.g. anomaly.line_sigma=10")
  ap.add_argument("--root", default="../shared/data/concrete_pavement", help="the data root the teacher learnt")
  ap.add_argument("--workdir", default="runs/cp", help="the trained teacher's workdir")
  ap.add_argument(
    "--candidate_workdir", default="",
    help="another trained teacher scored as the candidate (default: --workdir's, with the --set overrides)",
  )  # fmt: skip
  ap.add_argument("--config", default="configs/ddim_50.py")
  ap.add_argument("--folders", default=FOLDERS, help="comma-separated synthetic-crack folders")
  ap.add_argument("--n", type=int, default=2000, help="bootstrap resamples")
  args = ap.parse_args(argv)
  if args.name == "default" or not (args.set or args.candidate_workdir):
    sys.exit(
      "--name must not be 'default', and at least one --set (or --candidate_workdir) is needed: the default is scored as it is"
    )
  if args.candidate_workdir and not os.path.isdir(os.path.join(args.candidate_workdir, "checkpoints")):
    sys.exit(f"--candidate_workdir {args.candidate_workdir} holds no trained teacher (no checkpoints/ there)")
  folders = [f for f in args.folders.split(",") if f]
  missing = [f for f in folders if not os.path.isdir(f)]
  if missing:
    how = WRITE.get(os.path.normpath(missing[0]), "--seed=1 (add --p_negative=0.5 for hard negatives)")
    sys.exit(
      f"{missing[0]} does not exist: write it first: python benchmarks/synthetic_cracks_folder.py {args.root} {missing[0]} {how}"
    )
  sets = sets_of(folders)
  default = stamp(args.config, args.root, [])
  for set_name, folder in sets:
    for name, overrides in (("default", []), (args.name, args.set)):
      workdir = args.candidate_workdir if name != "default" and args.candidate_workdir else args.workdir
      d = os.path.join(workdir, "eval", eval_name(set_name, name))
      want = {**default, "overrides": list(overrides)}
      if workdir != args.workdir:  # another teacher: its evaluations say which
        want["teacher"] = os.path.normpath(workdir)
      if not needs_scoring(d, want):
        continue
      os.makedirs(os.path.dirname(d), exist_ok=True)
      log = d + ".log"
      print(f"scoring {set_name} ({name}); log {log}", flush=True)
      with open(log, "w") as f:
        rc = subprocess.call(command(args.config, args.root, workdir, folder, name, overrides), stdout=f, stderr=f)
      if rc:
        sys.exit(f"the evaluation of {set_name} ({name}) failed (exit {rc}); see {log}")
      with open(os.path.join(d, "selection.json"), "w") as f:
        json.dump(want, f)
  print(table(summarize(args.workdir, sets, args.name, n=args.n, candidate_workdir=args.candidate_workdir), args.name))


if __name__ == "__main__":
  main()
