"""Orbax save time of the default UNet's TrainState: replicated device arrays vs host copies (what train.fit
saves with one process, train.host_copy). Run by hand (never a timed test):

    python benchmarks/checkpoint.py [--devices=4] [--config=tiny|default]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--devices", type=int, default=4, help="fake CPU devices the state is replicated over")
  p.add_argument("--config", default="default", choices=["default", "tiny"])
  p.add_argument("--saves", type=int, default=3)
  args = p.parse_args()
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
  import jax
  import orbax.checkpoint as ocp
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from configs import ddim_50
  from crackjax import train as train_lib
  from crackjax.benchmark import machine
  from crackjax.scorer import count_params

  c = ddim_50.get_config("tiny" if args.config == "tiny" else None)
  state = train_lib.create_train_state(c, jax.random.PRNGKey(0))
  state = jax.device_put(state, NamedSharding(train_lib.make_mesh(), P()))
  print(f"command : python {' '.join(sys.argv)}\nmachine : {machine()}")
  print(f"state   : {len(jax.tree.leaves(state))} arrays, {count_params(state.params):,} params (x3 with EMA and Adam)")
  for label, tree in (("device arrays", lambda: state), ("host copies", lambda: train_lib.host_copy(state))):
    mngr = ocp.CheckpointManager(tempfile.mkdtemp(), options=ocp.CheckpointManagerOptions(max_to_keep=2))
    times = []
    for step in range(1, args.saves + 1):
      t0 = time.perf_counter()
      mngr.save(step, args=ocp.args.StandardSave(tree()))
      mngr.wait_until_finished()
      times.append(time.perf_counter() - t0)
    print(f"save    : {label:14s} {min(times):.2f} s (best of {args.saves}, first {times[0]:.2f} s)")


if __name__ == "__main__":
  main()
