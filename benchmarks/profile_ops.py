"""Where scoring's time goes, op by op: a jax.profiler trace of the teacher's (or the K = 4 student's) compiled
scoring function (as
evaluation runs it, scorer.compile_maps) on one batch of random 128x128 images, its XLA ops' time summed by kind
(convolutions; fusions, which hold the GroupNorms, SiLUs, adds and the healing's arithmetic; copies and the
rest), each convolution kind with its FLOPs and achieved GFLOP/s against the machine's measured peaks. Freshly
initialised parameters; run by hand on a quiet machine. Usage:

  python benchmarks/profile_ops.py [--model teacher|student] [--data ../shared/data/concrete_pavement]
      [--repeats 3] [--devices 1]
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", default="../shared/data/concrete_pavement", help="root whose real-data defaults apply")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--devices", type=int, default=1, help="XLA CPU devices (CRACKJAX_CPU_DEVICES)")
  ap.add_argument("--model", choices=("teacher", "student"), default="teacher", help="student: coarse-to-fine, K = 4")
  args = ap.parse_args()
  os.environ["CRACKJAX_CPU_DEVICES"] = str(args.devices)
  __import__("main")  # sets the XLA device count (main.cpu_devices) before jax starts
  import jax
  import numpy as np

  from configs import ddim_50, student_coarse_to_fine
  from crackjax import student, teacher
  from crackjax.benchmark import machine, machine_peak
  from crackjax.scorer import compile_maps, params_on

  if args.model == "teacher":
    config = ddim_50.get_config(f"data={args.data}")
    scorer = teacher.init_scorer(config)
  else:
    config = student_coarse_to_fine.get_config(f"data={args.data}")
    with config.unlocked():
      config.student.stages = 4
    scorer = student.init_scorer(config)
  key = jax.random.PRNGKey(0)
  x = np.asarray(jax.random.uniform(key, (config.eval.batch_size, 128, 128, 3), minval=-1, maxval=1))
  ids = np.arange(len(x), dtype=np.int32)
  executable, devices, flops = compile_maps(scorer, x, key, ids)
  params = params_on(scorer, devices)

  def run(*args):
    return executable(params, *args)

  jax.block_until_ready(run(x, key, ids))
  peak = machine_peak()
  with tempfile.TemporaryDirectory() as logdir:
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
      for _ in range(args.repeats):
        jax.block_until_ready(run(x, key, ids))
    (path,) = glob.glob(os.path.join(logdir, "**", "perfetto_trace.json.gz"), recursive=True)
    with gzip.open(path) as f:
      events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  ops = [e for e in events if e.get("ph") == "X" and "dur" in e]
  # XLA:CPU's thunks are named after their HLO instruction (convolution.12, fusion.3, copy.1, ...)
  kind_of = lambda name: re.sub(r"[._]\d+$", "", name.split(":")[0])  # noqa: E731
  per_kind, names = collections.Counter(), collections.Counter()
  for e in ops:
    k = kind_of(e["name"])
    if re.fullmatch(r"[a-z][a-z_-]*", k) and k not in ("ThreadpoolListener", "jit", "pjit"):
      per_kind[k] += e["dur"] / 1e6 / args.repeats
      names[k] += 1
  wall = _wall(ops) / args.repeats
  total = sum(per_kind.values())
  print(f"command : python {' '.join(sys.argv)}\nmachine : {machine()}")
  print(f"peak    : matmul {peak['matmul_gflops_per_second']:.1f}, 3x3 convolution {peak['conv_gflops_per_second']:.1f} GFLOP/s")
  print(f"batch   : {len(x)} x 128x128, {scorer.info['description']}, {flops / 1e9:.2f} GFLOP/image")
  rate = len(x) * flops / wall / 1e9
  print(f"wall    : {wall:.3f} s per batch ({len(x) / wall:.2f} images/s, {rate:.1f} GFLOP/s)")
  print(f"ops     : {total:.3f} s per batch, summed over threads")
  print("\n| op kind | seconds per batch (all threads) | share of op time | ops per batch |")
  print("|---|---|---|---|")
  for k, s in per_kind.most_common(12):
    print(f"| {k} | {s:.3f} | {100 * s / total:.0f}% | {names[k] / args.repeats:.0f} |")


def _wall(ops: list[dict]) -> float:
  start = min(e["ts"] for e in ops)
  end = max(e["ts"] + e["dur"] for e in ops)
  return (end - start) / 1e6


if __name__ == "__main__":
  main()
