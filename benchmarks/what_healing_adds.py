"""What the diffusion model adds: today's default scoring (every filter and pooling as configured) with the healing
replaced, evaluated like `--mode=evaluate` on the training root (val, and test once per row) and on a root with
pixel masks. Rows:

  constant   the input against its own mean colour: only the filters, the pyramid and the darkness term remain
  blur       the input against its own Gaussian blur (sigma --blur pixels)
  unet4      the UNet after 4 training steps (--unet4_workdir, trained by this script when absent)
  ae         the AE baseline's reconstruction (--ae_workdir, trained by `configs/ae.py` when absent)
  draw1      the trained teacher, one draw (anomaly.num_draws=1, no antithetic pair)
  teacher    the trained teacher as configured (the antithetic pair)

Each row is written to <--out>/<row>/ (metrics.json of the training root, eval/<other>/metrics.json of the other
root), never into the teacher's workdir, and the table is printed and written to <--out>/table.md. Usage:

  python benchmarks/what_healing_adds.py --workdir runs/cp --data ../shared/data/concrete_pavement \
      [--other ../shared/data/deepcrack] [--rows constant,blur,unet4,ae,draw1,teacher] [--out runs/adds]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

__import__("main")  # one XLA device per core (main.cpu_devices), set before jax starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from crackjax import evaluate as evaluate_lib  # noqa: E402
from crackjax import jobs, teacher  # noqa: E402
from crackjax.baselines import ae as ae_lib  # noqa: E402
from crackjax.baselines import blur, recon  # noqa: E402

ROWS = ("constant", "blur", "unet4", "ae", "draw1", "teacher")


def _main_py(*args: str) -> None:
  subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], check=True, cwd=ROOT)


def constant_healer(x0):
  return jnp.broadcast_to(x0.mean(axis=(1, 2), keepdims=True), x0.shape)


def scorer_for(row: str, config, args):
  """The row's Scorer and its config (the teacher's, with the row's changes)."""
  c = config.copy_and_resolve_references()
  if row == "teacher":
    return jobs.trained_scorer(c, args.workdir), c
  if row == "draw1":
    with c.unlocked():
      c.anomaly.num_draws, c.anomaly.antithetic = 1, False
    return jobs.trained_scorer(c, args.workdir), c
  if row == "unet4":
    if not os.path.exists(os.path.join(args.unet4_workdir, "checkpoints")):
      _main_py(f"--config=configs/ddim_50.py:data={args.data}", f"--workdir={args.unet4_workdir}", "--mode=train",
               "--config.train.num_steps=4", "--config.train.checkpoint_every=4", "--config.train.log_every=2")  # fmt: skip
    return jobs.trained_scorer(c, args.unet4_workdir), c
  if row == "constant":
    return teacher.scorer_from_params(c, {}, ("the input's mean colour", constant_healer, 3.0)), c
  if row == "blur":
    healer = (f"a Gaussian blur (sigma {args.blur:g} px)", functools.partial(blur.blur, sigma=args.blur), 12 * args.blur)
    return teacher.scorer_from_params(c, {}, healer), c
  if row == "ae":
    if not os.path.exists(os.path.join(args.ae_workdir, "checkpoints")):
      _main_py(f"--config=configs/ae.py:data={args.data}", f"--workdir={args.ae_workdir}", "--mode=train")
    from configs import ae as ae_config

    ac = ae_config.get_config(f"data={args.data}")
    spec = ae_lib.spec()
    net = spec.net(ac)
    params = jobs.trained_scorer(ac, args.ae_workdir).params
    healer = lambda x0: net.apply({"params": params}, x0)["recon"]  # noqa: E731
    fwd = recon.flops_of(lambda p, x: net.apply({"params": p}, x), params, jnp.zeros((1, 64, 64, 3))) / 64**2
    scorer = teacher.scorer_from_params(c, {}, ("the AE baseline's reconstruction", healer, fwd))
    # the AE's 1/8 latent, per pyramid level
    return dataclasses.replace(scorer, multiple=max(scorer.multiple, 2 ** (recon.DEPTH + c.anomaly.pyramid - 1))), c
  raise ValueError(f"unknown row {row!r}; rows are {', '.join(ROWS)}")


def evaluate_row(row: str, config, args) -> dict:
  out = os.path.join(args.out, row)
  os.makedirs(out, exist_ok=True)
  for name in ("config.json", "train_info.json", "operating_points.json"):  # the teacher's own: never rewritten here
    if os.path.exists(os.path.join(args.workdir, name)) and not os.path.exists(os.path.join(out, name)):
      shutil.copy(os.path.join(args.workdir, name), out)
  scorer, c = scorer_for(row, config, args)
  result = {"row": row, "description": scorer.info["description"]}
  for root in (args.data, args.other):
    rc = c.copy_and_resolve_references()
    with rc.unlocked():
      if root != args.data:
        rc.eval.root = root
      rc.data.tfds_dir = config.data.tfds_dir or os.path.join(args.workdir, "tfds")
    done = os.path.join(evaluate_lib.output_dir(rc, out)[0], "metrics.json")
    if not os.path.exists(done):
      t0 = time.time()
      evaluate_lib.evaluate(rc, out, scorer)
      print(f"{row}: evaluated {root} in {time.time() - t0:.0f} s", flush=True)
    with open(done) as f:
      result["main" if root == args.data else "other"] = json.load(f)
  return result


def table(results: list[dict]) -> str:
  lines = [
    "| healing | val image AUROC | test image AUROC | test recall / precision at the val threshold "
    "| other root pixel AUROC | AUPRO | mask F1 | images/s |",
    "|---|---|---|---|---|---|---|---|",
  ]  # fmt: skip
  f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
  for r in results:
    m, o = r["main"], r.get("other", {})
    img, px = m.get("image", {}), o.get("pixel", {})
    lines.append(
      f"| {r['row']}: {r['description']} | {f(m.get('val', {}).get('auroc'))} | {f(img.get('auroc'))} | "
      f"{f(img.get('recall'))} / {f(img.get('precision'))} | {f(px.get('auroc'))} | {f(px.get('aupro'))} | "
      f"{f(px.get('mask', {}).get('f1'))} | {m.get('speed', {}).get('images_per_second', float('nan')):.2f} |"
    )
  return "\n".join(lines)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", default="runs/cp", help="the trained teacher")
  ap.add_argument("--data", default="../shared/data/concrete_pavement")
  ap.add_argument("--other", default="../shared/data/deepcrack", help="a root with pixel masks")
  ap.add_argument("--rows", default=",".join(ROWS))
  ap.add_argument("--blur", type=float, default=4.0, help="the blur row's sigma, pixels at the working resolution")
  ap.add_argument("--unet4_workdir", default="runs/adds_unet4")
  ap.add_argument("--ae_workdir", default="runs/adds_ae")
  ap.add_argument("--out", default="runs/adds")
  args = ap.parse_args()
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
  logging.getLogger("crackjax").setLevel(logging.INFO)  # progress, as main.py shows it
  from configs import ddim_50

  config = ddim_50.get_config(f"data={args.data}")  # the README's real-data command, as the teacher was trained
  print(f"command : python {' '.join(sys.argv)}\ndevices : {jax.device_count()} x {jax.devices()[0].device_kind}", flush=True)
  results = [evaluate_row(row, config, args) for row in args.rows.split(",")]
  text = table(results)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  main()
