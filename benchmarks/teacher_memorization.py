"""Does the trained teacher memorize its training photos? A membership probe on the real-data teacher.

The real-data teacher is trained on t in [train.t_min, train.t_max] only (it heals from t_start, it never generates
from pure noise), so the toy probe's test (crackjax/toy.py: generate, then look for copies) does not apply to it.
What applies is the membership test of Carlini et al. (2023, "Extracting training data from diffusion models"): a
model that memorized its training images denoises them better than unseen images of the same kind. For each of n
training photos and n held-out sound photos (val and test good, never trained on), the same noise (common random
numbers: training photo i and held-out photo i get the same draws) is added at several t, and

    loss(x, t) = mean over draws of the mean squared error of the predicted noise (the training loss)
    membership AUROC(t) = P(loss(held-out) > loss(training))

0.5 means the model cannot tell its training photos from unseen ones; 1.0 means it knows every one. The same AUROC
is taken of the default anomaly score (a memorizing healer would leave smaller residuals on its training photos),
with a 95% bootstrap interval over photos. A positive control shows that the probe detects memorization when it
exists: the same config trained on --control_images photos only (--control_steps steps), probed the same way.

    python benchmarks/teacher_memorization.py --workdir runs/cp --data ../shared/data/concrete_pavement

Writes <--out>/memorization.json and table.md, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

__import__("main")  # one XLA device per core (main.cpu_devices), set before jax starts

import jax  # noqa: E402
import numpy as np  # noqa: E402

from crackjax import jobs, streams, teacher, toy  # noqa: E402
from crackjax import train as train_lib  # noqa: E402
from crackjax.data import builders, pipeline  # noqa: E402
from crackjax.scorer import compute_maps  # noqa: E402


def probe(name: str, config, workdir: str, members: list[np.ndarray], held: list[np.ndarray], args) -> dict:
  t0 = time.time()
  params = train_lib.load_trained(config, workdir).ema_params
  key = streams.key(config.seed, "membership")
  ts = [int(t) for t in args.ts.split(",")]
  n = min(len(members), len(held))  # common random numbers pair photo i of each set
  lm = toy.denoising_losses(config, params, members, ts, args.draws, key, args.crop)
  lh = toy.denoising_losses(config, params, held, ts, args.draws, key, args.crop)
  rng = np.random.default_rng(0)
  out = {"name": name, "workdir": workdir, "n_train": len(members), "n_heldout": len(held), "paired": n, "t": {}}
  for a, t in enumerate(ts):
    out["t"][t] = toy.membership(lm[a], lh[a], rng)
    out["t"][t]["paired_share_train_lower"] = float(np.mean(lm[a, :n] < lh[a, :n]))
  scorer = jobs.trained_scorer(config, workdir)
  k = jax.random.fold_in(key, 1 << 20)  # the anomaly scores' noise, apart from the losses' (fold_in(key, t))
  sm = compute_maps(scorer, members, k, batch_size=config.eval.batch_size, desc=f"{name}: its training photos").scores
  sh = compute_maps(scorer, held, k, batch_size=config.eval.batch_size, desc=f"{name}: held-out sound photos").scores
  out["anomaly_score"] = toy.membership(sm, sh, rng)
  out["seconds"] = time.time() - t0
  print(f"{name}: probed in {out['seconds']:.0f} s", flush=True)
  return out


def table(results: list[dict]) -> str:
  ts = list(results[0]["t"])
  head = ["teacher", "training / held-out photos"] + [f"loss AUROC t={t}" for t in ts] + ["anomaly score AUROC"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  cell = lambda m: f"{m['auroc']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"  # noqa: E731
  for r in results:
    row = [r["name"], f"{r['n_train']} / {r['n_heldout']}"] + [cell(r["t"][t]) for t in ts]
    row.append(cell(r["anomaly_score"]))
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", default="runs/cp", help="the trained teacher")
  ap.add_argument("--data", default="../shared/data/concrete_pavement")
  ap.add_argument("--n", type=int, default=400, help="training photos and held-out sound photos probed, each")
  ap.add_argument("--ts", default="50,100,200,300", help="noise levels probed (within the teacher's training range)")
  ap.add_argument("--draws", type=int, default=2, help="noise draws per photo and t")
  ap.add_argument("--crop", type=int, default=64, help="centre crop side probed, pixels at the working resolution")
  ap.add_argument("--control_images", type=int, default=16, help="the positive control's training photos (0: none)")
  ap.add_argument("--control_steps", type=int, default=2400)
  ap.add_argument("--control_workdir", default="runs/memorization_control")
  ap.add_argument("--out", default="runs/memorization")
  args = ap.parse_args()
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
  logging.getLogger("crackjax").setLevel(logging.INFO)
  from configs import ddim_50

  config = ddim_50.get_config(f"data={args.data}")  # the README's real-data command, as the teacher was trained
  with config.unlocked():
    config.data.tfds_dir = config.data.tfds_dir or os.path.join(args.workdir, "tfds")
  print(f"command : python {' '.join(sys.argv)}\ndevices : {jax.device_count()} x {jax.devices()[0].device_kind}", flush=True)
  train_images, _ = teacher.load_train_images(config, args.workdir)
  builder = builders.builder_for(config, args.workdir, config.data.root)
  held = []
  for split in ("val", "test"):
    s = pipeline.load_split(builder, split, resize=config.data.resize)
    held += [im for im, label in zip(s.images, s.labels) if label == 0]
  rng = np.random.default_rng(config.seed)
  members = [train_images[i] for i in sorted(rng.choice(len(train_images), min(args.n, len(train_images)), replace=False))]
  held = [held[i] for i in sorted(rng.choice(len(held), min(args.n, len(held)), replace=False))]
  results = [probe(f"{args.workdir} ({len(train_images)} training photos)", config, args.workdir, members, held, args)]
  if args.control_images:
    c = config.copy_and_resolve_references()
    with c.unlocked():
      c.train.num_steps = args.control_steps
    few = [train_images[i] for i in range(args.control_images)]
    train_lib.train(c, args.control_workdir, few)
    results.append(probe(f"positive control: {args.control_images} training photos", c, args.control_workdir, few, held, args))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "memorization.json"), "w") as f:
    json.dump({"command": " ".join(sys.argv), "results": results}, f, indent=2)
  text = table(results)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  main()
