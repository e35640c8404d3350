"""float32 vs bfloat16 compute (config.compute.dtype) for the diffusion teacher on this machine: training steps/s
and one-step scoring images/s with the real-data settings. Run by hand (never a timed test):

    python benchmarks/precision.py [--config=configs/ddim_50.py:data=ROOT]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=10, help="timed training steps per dtype")
  args = p.parse_args()
  import jax

  from configs import ddim_50
  from crackjax import kinds
  from crackjax.benchmark import machine, scorer_speed, train_speed

  print(f"command : python {' '.join(sys.argv)}\nmachine : {machine()}")
  key = jax.random.PRNGKey(0)
  for dtype in ("float32", "bfloat16"):
    c = ddim_50.get_config("data=/unused")  # the real-data sizes; no data is read
    c.compute.dtype = dtype
    train_rate = train_speed(c, key, steps=args.steps)[0]["train_steps_per_second"]
    scorer = kinds.get("teacher").init_scorer(c)
    xs = jax.random.uniform(key, (c.eval.batch_size, 128, 128, 3), minval=-1, maxval=1)
    row = scorer_speed(scorer, xs, key, repeats=3)
    print(
      f"{dtype:9s}: train {train_rate:.2f} steps/s (batch {c.train.batch_size}, {c.data.crop_size}x{c.data.crop_size}); "
      f"scoring {row['images_per_second']:.2f} images/s (128x128, batch {c.eval.batch_size}, one-step x0)"
    )


if __name__ == "__main__":
  main()
