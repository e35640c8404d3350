"""Sampler and step-count sweep of a trained teacher: `--mode=sweep` (configs/sweep_steps.py sets the grid).

For every sampler variant (DDPM, DDIM eta = 0, DDIM eta = 1) and every step count that the start step allows
(steps <= anomaly.t_start + 1), the teacher heals the same test images with the same noise (common random
numbers, so rows differ only by the sampler) and the row records image AUROC / AP, pixel AUROC / AUPRO where the
root has masks, images/s, and the compile time apart from the run time. Each combination compiles once.

Writes <workdir>/sweep/<name>/sweep.json and sweep.csv after every row (a killed sweep resumes at the next
missing row) and, at the end, the plots: image and pixel AUROC vs steps, images/s vs steps, AUROC vs seconds
per image.
"""

from __future__ import annotations

import csv
import json
import logging
import os

import ml_collections

from crackjax import config as config_lib
from crackjax import metrics, plots, report, streams
from crackjax import teacher as teacher_lib
from crackjax.data import builders, pipeline
from crackjax.errors import UserError
from crackjax.scorer import MapResult, compute_maps, tiling

log = logging.getLogger(__name__)

COLUMNS = (
  "sampler",
  "steps",
  "t_start",
  "image_auroc",
  "image_ap",
  "pixel_auroc",
  "aupro",
  "images_per_second",
  "seconds_per_image",
  "compile_seconds",
  "gflops_per_image",
  "n_images",
)


def combinations(config: ml_collections.ConfigDict) -> tuple[list[tuple[str, int]], list[int]]:
  """(sampler, steps) pairs the start step allows, in grid order, and the step counts it rules out."""
  limit = config.anomaly.t_start + 1
  steps = [int(s) for s in config.sweep.steps]
  return [(v, s) for v in config.sweep.samplers for s in steps if s <= limit], [s for s in steps if s > limit]


def _row(sampler: str, steps: int, config, split: pipeline.Split, res: MapResult) -> dict:
  labelled = split.labels >= 0
  s, y = res.scores[labelled], split.labels[labelled]
  both = bool((y == 1).any() and (y == 0).any())
  row = {
    "sampler": sampler,
    "steps": steps,
    "t_start": config.anomaly.t_start,
    "image_auroc": metrics.auroc(s, y) if both else None,
    "image_ap": metrics.average_precision(s, y) if both else None,
    "pixel_auroc": None,
    "aupro": None,
    "images_per_second": len(split) / max(res.seconds, 1e-9),
    "seconds_per_image": res.seconds / max(len(split), 1),
    "compile_seconds": res.compile_seconds,
    "gflops_per_image": res.flops_per_image / 1e9,
    "n_images": len(split),
  }
  px = report.split_pixel_metrics(split, res.maps)
  if px is not None:
    row["pixel_auroc"], row["aupro"] = px["auroc"], px["aupro"]
  return row


def _write(out_dir: str, rows: list[dict], meta: dict) -> None:
  tmp = os.path.join(out_dir, "sweep.json.tmp")
  with open(tmp, "w") as f:
    json.dump({**meta, "rows": rows}, f, indent=2)
  os.replace(tmp, os.path.join(out_dir, "sweep.json"))  # a kill mid-write never leaves a torn file
  with open(os.path.join(out_dir, "sweep.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(COLUMNS)
    for r in rows:
      w.writerow(["" if r[k] is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS])


def format_table(rows: list[dict]) -> str:
  num = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
  lines = ["sampler     steps  image AUROC  pixel AUROC  AUPRO   images/s  s/image  compile s"]
  for r in rows:
    lines.append(
      f"{r['sampler']:<10} {r['steps']:6d}  {num(r['image_auroc'], '11.4f')}  {num(r['pixel_auroc'], '11.4f')}  "
      f"{num(r['aupro'], '6.4f')}  {r['images_per_second']:8.2f}  {r['seconds_per_image']:7.3f}  {r['compile_seconds']:9.1f}"
    )
  return "\n".join(lines)


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Runs (or resumes) the sweep of the teacher trained in `workdir`; returns its rows."""
  params = teacher_lib.load_params(config, workdir)
  root = config.eval.root or config.data.root
  out_dir = os.path.join(workdir, "sweep", config.sweep.name)
  os.makedirs(out_dir, exist_ok=True)
  combos, ruled_out = combinations(config)
  if ruled_out:
    log.info("steps %s exceed anomaly.t_start + 1 = %d and are skipped", ruled_out, config.anomaly.t_start + 1)
  if not combos:
    raise UserError(f"config.sweep.steps: no step count <= anomaly.t_start + 1 = {config.anomaly.t_start + 1}")
  meta = {"root": root or "synthetic", "split": "test", "max_images": config.sweep.max_images, "seed": config.seed}
  rows: list[dict] = []
  path = os.path.join(out_dir, "sweep.json")
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if {k: saved.get(k) for k in meta} == meta:
      rows = [r for r in saved["rows"] if r["t_start"] == config.anomaly.t_start]
      log.info("Resuming the sweep in %s: %d of %d rows done", out_dir, len(rows), len(combos))
    else:
      log.info("%s was written for other data or images; starting the sweep again", path)
  done = {(r["sampler"], r["steps"]) for r in rows}
  builder = builders.builder_for(config, workdir, root)
  if "test" not in builder.info.splits:
    raise UserError(f"{root or 'synthetic data'} has no test split to sweep on; {builders.EXPECTED_LAYOUT}")
  split = pipeline.load_split(builder, "test", resize=config.data.resize, max_images=config.sweep.max_images)
  key = streams.key(config.seed, "sweep")  # the same noise for every row
  for i, (sampler, steps) in enumerate(combos):
    if (sampler, steps) in done:
      continue
    c = config_lib.with_healing(config, sampler, steps)
    scorer = teacher_lib.scorer_from_params(c, params)  # its localization map: pixel metrics as evaluate measures them
    res = compute_maps(
      scorer, split.images, key, batch_size=config.eval.batch_size, tile=tiling(config),
      desc=f"{sampler} {steps} steps ({i + 1}/{len(combos)})",
    )  # fmt: skip
    rows.append(_row(sampler, steps, c, split, res))
    _write(out_dir, rows, meta)
    log.info("\n%s", format_table(rows[-1:]))
  order = {c: i for i, c in enumerate(combos)}
  rows.sort(key=lambda r: order.get((r["sampler"], r["steps"]), len(order)))
  _write(out_dir, rows, meta)
  plots.sweep_curves(rows, out_dir)
  print(f"sweep of {meta['root']} test ({len(split)} images), t_start {config.anomaly.t_start} -> {out_dir}")
  print(format_table(rows), flush=True)
  return rows
