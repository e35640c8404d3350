"""Scoring speed against eval.micro_batch (images per pass within an eval batch), for the student and, in the
same process, its teacher as configured and DDIM-50 healing: the rows `--mode=benchmark` prints, once per value.
Freshly initialised parameters (speed does not depend on training), one batch of random images; run by hand on a
quiet machine. The maps do not depend on the setting (tests/test_scorer.py). Usage:

  python benchmarks/micro_batch.py [--data ../shared/data/concrete_pavement] [--teacher_workdir runs/cp]
      [--stages 4] [--input_stride 1] [--micro 0,2,4,8]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from configs import student_coarse_to_fine  # noqa: E402
from crackjax import student as student_lib  # noqa: E402
from crackjax.benchmark import machine, scorer_speed, student_teachers  # noqa: E402


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", default="../shared/data/concrete_pavement", help="root whose real-data defaults apply")
  ap.add_argument("--teacher_workdir", default="runs/cp", help="the teacher as configured (its config.json)")
  ap.add_argument("--stages", type=int, default=4)
  ap.add_argument("--input_stride", type=int, default=1, help="student.input_stride (space to depth)")
  ap.add_argument("--micro", default="0,2,4,8")
  args = ap.parse_args()
  config = student_coarse_to_fine.get_config(f"data={args.data}")
  with config.unlocked():
    config.student.update(stages=args.stages, input_stride=args.input_stride, teacher_workdir=args.teacher_workdir)
  size, batch = 128, config.eval.batch_size
  key = jax.random.PRNGKey(config.seed)
  x = jax.random.uniform(key, (batch, size, size, 3), minval=-1, maxval=1)
  print(f"command : python {' '.join(sys.argv)}\nmachine : {machine()}", flush=True)
  student = f"student K = {args.stages}, input_stride {args.input_stride}"
  print(f"images  : {batch} x {size}x{size}; {student}; teacher from {args.teacher_workdir}\n")
  print("| eval.micro_batch | student images/s | teacher as configured | DDIM-50 healing | vs teacher | vs DDIM-50 |")
  print("|---|---|---|---|---|---|", flush=True)
  for micro in (int(v) for v in args.micro.split(",")):
    with config.unlocked():
      config.eval.micro_batch = micro
    s = scorer_speed(student_lib.init_scorer(config), x, key, repeats=10)["images_per_second"]
    t, d = (r["images_per_second"] for r in student_teachers(config, x, key))
    print(f"| {micro} | {s:.1f} | {t:.2f} | {d:.2f} | {s / t:.0f}x | {s / d:.0f}x |", flush=True)


if __name__ == "__main__":
  main()
