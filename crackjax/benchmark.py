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
  if config.student.kind:
    return student_benchmark(config, workdir)
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


def _heal_speed(config, params, x, key) -> tuple[float, float, int]:
  """(images/s, GFLOP/image, network passes per image) of the configured teacher's whole anomaly map."""
  model = UNet(train_lib.unet_config(config))
  cfg = heal_config(config)
  fn = (
    jax.jit(
      lambda p, x, key: anomaly.anomaly_map(
        lambda x_t, t: model.apply({"params": p}, x_t, t), train_lib.make_schedule(config), x, key, cfg
      )[0]
    )
    .lower(params, x, key)
    .compile()
  )
  fwd = jax.jit(lambda p, x, t: model.apply({"params": p}, x, t))
  t = jnp.zeros((x.shape[0],), jnp.int32)
  fwd_flops = _flops(fwd.lower(params, x, t).compile()) / x.shape[0]
  passes = cfg.num_steps * cfg.num_draws
  return x.shape[0] / _time(fn, params, x, key, repeats=2), fwd_flops * passes / 1e9, passes


def student_benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Student images/s against its teacher's healing, same machine, same image size, same run."""
  from crackjax import student as student_lib

  size = config.data.synthetic.image_size if not config.data.root else 128
  batch = config.eval.batch_size
  key = jax.random.PRNGKey(config.seed)
  x = jax.random.uniform(key, (batch, size, size, 3), minval=-1, maxval=1)
  s_params = student_lib.create_state(config, key).params
  net = student_lib.StudentNet(student_lib.student_config(config))
  fn = jax.jit(lambda p, x: net.apply({"params": p}, x)[-1]).lower(s_params, x).compile()
  s_ips = batch / _time(fn, s_params, x, repeats=10)
  out = {
    "command": " ".join(sys.argv),
    "machine": machine(),
    "image_size": size,
    "eval_batch": batch,
    "student": {
      "architecture": config.student.kind,
      "stages": config.student.stages,
      "params": int(sum(np.prod(p.shape) for p in jax.tree.leaves(s_params))),
      "images_per_second": s_ips,
      "gflops_per_image": _flops(fn) / batch / 1e9,
    },
    "teachers": [],
  }
  t_params = train_lib.create_train_state(config, key).params
  n_t = int(sum(np.prod(p.shape) for p in jax.tree.leaves(t_params)))
  variants = {"as configured": config}
  full = config.copy_and_resolve_references()
  with full.unlocked():
    full.anomaly.heal_steps = 0  # the sampler's whole share below t_start
  if heal_config(full).num_steps != heal_config(config).num_steps:
    variants[f"{config.sampler.kind}-{config.sampler.num_steps} share"] = full
  for name, c in variants.items():
    ips, gflops, passes = _heal_speed(c, t_params, x, key)
    out["teachers"].append(
      {"teacher": name, "passes": passes, "params": n_t, "images_per_second": ips, "gflops_per_image": gflops}
    )
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "benchmark.json"), "w") as f:
    json.dump(out, f, indent=2)
  st = out["student"]
  lines = [
    f"command : {out['command']}",
    f"machine : {out['machine']}",
    f"images  : {size}x{size}, batch {batch}",
    f"student : {st['architecture']} (stages {st['stages']}), {st['params']:,} params, {st['gflops_per_image']:.3f} GFLOP/image, "
    f"{st['images_per_second']:.1f} images/s",
  ]
  for t in out["teachers"]:
    lines.append(
      f"teacher : {t['teacher']}: {t['passes']} UNet passes, {t['params']:,} params, {t['gflops_per_image']:.2f} GFLOP/image, "
      f"{t['images_per_second']:.2f} images/s -> student {st['images_per_second'] / t['images_per_second']:.0f}x faster, "
      f"{t['params'] / st['params']:.0f}x fewer params"
    )
  print("\n".join(lines), flush=True)
  return out
