"""Speed of the configured model on this machine (run by hand; never a timed test).

Prints and writes <workdir>/benchmark.json: parameters, GFLOPs per image (XLA cost analysis of the forward pass
at eval image size), training steps/s and achieved GFLOP/s, forward images/s, and healing images/s for several
healing step counts (the sampler's `lax.scan` length). Parameters are freshly initialised: speed does not depend
on training.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from crackjax import anomaly
from crackjax import train as train_lib
from crackjax.evaluate import compiled_flops as _flops
from crackjax.evaluate import heal_config
from crackjax.unet import UNet

log = logging.getLogger(__name__)


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{cpu}, {os.cpu_count()} cores; JAX {jax.__version__} on {jax.device_count()} x {jax.devices()[0].device_kind}"


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # warm-up
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats


def benchmark(config: ml_collections.ConfigDict, workdir: str, heal_step_counts=(1, 2, 5, 10, 25)) -> dict:
  size = config.data.synthetic.image_size if not config.data.root else 128
  batch = config.eval.batch_size
  key = jax.random.PRNGKey(config.seed)
  state = train_lib.create_train_state(config, key)
  params = state.params
  n_params = int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
  model = UNet(train_lib.unet_config(config))
  schedule = train_lib.make_schedule(config)
  out = {"command": " ".join(sys.argv), "machine": machine(), "params": n_params, "image_size": size, "eval_batch": batch}

  # Forward pass at eval size.
  x = jnp.zeros((batch, size, size, 3))
  t = jnp.full((batch,), config.anomaly.t_start, jnp.int32)
  fwd = jax.jit(lambda p, x, t: model.apply({"params": p}, x, t)).lower(params, x, t).compile()
  fwd_flops = _flops(fwd) / batch
  dt = _time(fwd, params, x, t, repeats=5)
  out["gflops_per_image_forward"] = fwd_flops / 1e9
  out["forward_images_per_second"] = batch / dt
  out["forward_gflops_per_second"] = fwd_flops * batch / dt / 1e9

  # Training steps.
  crop, tb = config.data.crop_size, config.train.batch_size
  step = jax.jit(train_lib.make_train_step(config, schedule))
  xb = jax.random.uniform(key, (tb, crop, crop, 3), minval=-1, maxval=1)
  compiled = step.lower(state, xb, key).compile()
  train_flops = _flops(compiled)
  st, _ = compiled(state, xb, key)
  jax.block_until_ready(st)
  n = 5
  t0 = time.perf_counter()
  for _ in range(n):
    st, m = compiled(st, xb, key)
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / n
  out["train_batch"], out["train_crop"] = tb, crop
  out["train_steps_per_second"] = 1.0 / dt
  out["train_gflops_per_step"] = train_flops / 1e9
  out["train_gflops_per_second"] = train_flops / dt / 1e9

  # Healing (noise to t_start, sampler back, residual map) per step count.
  base = heal_config(config)
  out["healing"] = []
  for k in heal_step_counts:
    if k > base.t_start + 1:
      continue
    cfg = base.__class__(**{**base.__dict__, "num_steps": k, "num_draws": 1})
    fn = jax.jit(
      lambda p, x, key, cfg=cfg: anomaly.anomaly_map(lambda x_t, t: model.apply({"params": p}, x_t, t), schedule, x, key, cfg)[0]
    )
    t0 = time.perf_counter()
    c = fn.lower(params, x, key).compile()
    compile_s = time.perf_counter() - t0
    dt = _time(c, params, x, key, repeats=2)
    out["healing"].append(
      {
        "heal_steps": k,
        "images_per_second": batch / dt,
        # XLA counts the scan body once, so the healing cost is the forward cost times the steps.
        "gflops_per_image": fwd_flops * k / 1e9,
        "achieved_gflops_per_second": fwd_flops * k * batch / dt / 1e9,
        "compile_seconds": compile_s,
      }
    )
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "benchmark.json"), "w") as f:
    json.dump(out, f, indent=2)
  print_report(out)
  return out


def print_report(r: dict) -> None:
  lines = [
    f"command : {r['command']}",
    f"machine : {r['machine']}",
    f"params  : {r['params']:,}",
    f"forward : {r['gflops_per_image_forward']:.3f} GFLOP/image at {r['image_size']}x{r['image_size']}, "
    f"{r['forward_images_per_second']:.1f} images/s (batch {r['eval_batch']}), {r['forward_gflops_per_second']:.1f} GFLOP/s",
    f"train   : {r['train_steps_per_second']:.2f} steps/s (batch {r['train_batch']}, {r['train_crop']}x{r['train_crop']} crops), "
    f"{r['train_gflops_per_step']:.1f} GFLOP/step, {r['train_gflops_per_second']:.1f} GFLOP/s",
    "healing : steps  images/s  GFLOP/image  GFLOP/s  compile s   (one noise draw)",
  ]
  lines += [
    f"          {h['heal_steps']:5d}  {h['images_per_second']:8.2f}  {h['gflops_per_image']:11.3f}  "
    f"{h['achieved_gflops_per_second']:7.1f}  {h['compile_seconds']:9.1f}"
    for h in r["healing"]
  ]
  print("\n".join(lines), flush=True)
