"""Speed of the configured model on this machine (`--mode=benchmark`; run by hand, never a timed test).

Prints and writes <workdir>/benchmark.json, with the command and the machine: the machine's measured peak (a
large matmul and a large convolution timed in the same run, so that every achieved GFLOP/s below is also given as
a fraction of it, on any machine); the configured kind's Scorer
(freshly initialised parameters: speed does not depend on training) in images/s and GFLOP/image at one image
size; for the diffusion teacher also training steps/s and healing images/s for several step counts; for a
student also its teacher as configured and DDIM-50 healing, timed in the same process.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from crackjax import config as config_lib
from crackjax import kinds, streams
from crackjax import teacher as teacher_lib
from crackjax import train as train_lib
from crackjax.data import pipeline
from crackjax.scorer import Scorer, Stats, compile_maps, compiled_flops, iter_maps, params_on, spread, tiling

log = logging.getLogger(__name__)


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  dev = jax.devices()[0]
  return f"{cpu}, {os.cpu_count()} cores; JAX {jax.__version__} on {jax.device_count()} x {dev.device_kind}"


def _time(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # warm-up
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats


class Busy:
  """Cores busy over a block: the process's CPU seconds over the wall seconds (2.0: both cores of two)."""

  def __enter__(self):
    self.cpu, self.wall = time.process_time(), time.perf_counter()
    return self

  def __exit__(self, *exc):
    self.cores = (time.process_time() - self.cpu) / max(time.perf_counter() - self.wall, 1e-9)


def peak_memory_gib() -> float:
  """The process's peak resident memory so far (ru_maxrss: KiB on Linux)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


PEAK_MATMUL = 2048  # n of the n x n x n float32 matmul
PEAK_CONV = (16, 64, 64, 64, 64)  # batch, height, width, channels in, channels out of the 3x3 float32 convolution


def machine_peak(repeats: int = 5) -> dict:
  """GFLOP/s this device reaches on a large matmul and a large 3x3 convolution (float32, compiled by XLA): the
  ceilings the models' achieved rates are read against."""
  n = PEAK_MATMUL
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  t_mm = _time(jax.jit(jnp.matmul), a, a, repeats=repeats)
  b, h, w, ci, co = PEAK_CONV
  x = jax.random.normal(jax.random.PRNGKey(1), (b, h, w, ci), jnp.float32)
  k = jax.random.normal(jax.random.PRNGKey(2), (3, 3, ci, co), jnp.float32)
  conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
  t_conv = _time(conv, x, k, repeats=repeats)
  return {
    "matmul_gflops_per_second": 2 * n**3 / t_mm / 1e9,
    "conv_gflops_per_second": 2 * b * h * w * ci * co * 9 / t_conv / 1e9,
  }


def scorer_speed(scorer: Scorer, x: jnp.ndarray, key: jax.Array, repeats: int = 3) -> dict:
  """images/s and GFLOP/image of the scorer on the batch x as evaluation runs it (scorer.compile_maps: split over
  the local devices that divide the batch), compilation timed apart."""
  x = np.asarray(x)
  ids = np.arange(x.shape[0], dtype=np.int32)
  t0 = time.perf_counter()
  executable, devices, flops = compile_maps(scorer, x, key, ids)
  compile_s = time.perf_counter() - t0
  params = params_on(scorer, devices)
  with Busy() as busy:
    dt = _time(lambda *a: executable(params, *a), x, key, ids, repeats=repeats)
  mesh = spread(x.shape[0])
  return {
    "cores_busy": busy.cores,
    "description": scorer.info.get("description", scorer.info["kind"]),
    "params": scorer.info["params"],
    "images_per_second": x.shape[0] / dt,
    "gflops_per_image": flops / 1e9,
    "compile_seconds": compile_s,
    "devices": 1 if mesh is None else mesh.devices.size,
  }


def train_speed(config, key, steps: int = 5) -> tuple[dict, object]:
  """The diffusion teacher's bare training step as main.py compiles it (train.sharded_step: the batch split over
  every device, the state replicated and donated) on random crops of the configured size: (speed row, a state)."""
  crop, tb = config.data.crop_size, config.train.batch_size
  step, replicated, rows = train_lib.sharded_step(
    train_lib.make_train_step(config, train_lib.make_schedule(config)), batch_size=tb, field="train.batch_size"
  )
  state = jax.device_put(train_lib.create_train_state(config, key), replicated)
  xb = jax.device_put(jax.random.uniform(key, (tb, crop, crop, 3), minval=-1, maxval=1), rows)
  compiled = step.lower(state, xb, key).compile()
  train_flops = compiled_flops(compiled)
  if jax.device_count() > 1 and np.isfinite(train_flops):  # XLA counts one device's share of a sharded program
    train_flops *= jax.device_count()
  st, _ = compiled(state, xb, key)
  jax.block_until_ready(st)
  with Busy() as busy:
    t0 = time.perf_counter()
    for _ in range(steps):
      st, m = compiled(st, xb, key)
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t0) / steps
  row = {
    "train_cores_busy": busy.cores,
    "train_batch": tb,
    "train_crop": crop,
    "train_steps_per_second": 1.0 / dt,
    "train_gflops_per_step": train_flops / 1e9,
    "train_gflops_per_second": train_flops / dt / 1e9,
    "train_devices": jax.device_count(),
  }
  return row, st


LOOP_INTERVAL = 20  # steps per log interval of the timed training loop: one to compile, two timed


def loop_speed(config, images: int = 64) -> dict:
  """The training loop as main.py runs it (train.train: host crops, device transfer, the step, logging, a
  checkpoint) on random photos of twice the crop size, for three log intervals; its steady rate is the one after
  the first interval (compilation left out), as training.json records it."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.train.update(num_steps=3 * LOOP_INTERVAL, log_every=LOOP_INTERVAL, checkpoint_every=3 * LOOP_INTERVAL)
    c.data.stream = False
  rng = np.random.default_rng(0)
  side = 2 * c.data.crop_size
  photos = [rng.integers(60, 200, (side, side + side // 2, 3), dtype=np.uint8) for _ in range(images)]
  with tempfile.TemporaryDirectory() as workdir, Busy() as busy:
    train_lib.train(c, workdir, photos)
    with open(os.path.join(workdir, "training.json")) as f:
      steady = json.load(f)["steady_steps_per_second"]
  return {"loop_steps_per_second": steady, "loop_cores_busy": busy.cores}


HEAL_STEPS = (1, 2, 5, 10, 25)  # the healing step counts timed (those up to anomaly.t_start + 1)


def _teacher_rows(config, x, key) -> dict:
  """Training steps/s (the bare step and the loop around it) and healing images/s per step count of the teacher."""
  row, state = train_speed(config, key)
  out = {**row, **loop_speed(config), "healing": []}
  residual = config.copy_and_resolve_references()
  with residual.unlocked():
    residual.anomaly.num_draws, residual.anomaly.antithetic = 1, False
  params = {"unet": state.params}
  for k in HEAL_STEPS:
    if k > config.anomaly.t_start + 1:
      continue
    row = scorer_speed(teacher_lib.scorer_from_params(config_lib.with_healing(residual, steps=k), params), x, key, repeats=2)
    out["healing"].append({"heal_steps": k, **row})
  return out


def student_teachers(config, x, key) -> list[dict]:
  """The student's teacher as configured (its workdir's config when there is one) and DDIM-50's full share."""
  tc = config
  if config.student.teacher_workdir and os.path.exists(os.path.join(config.student.teacher_workdir, "config.json")):
    tc = config_lib.teacher_config(config, config.student.teacher_workdir)
  tc = tc.copy_and_resolve_references()
  with tc.unlocked():
    tc.model.kind = "teacher"
  rows = [{"teacher": "as configured", **scorer_speed(teacher_lib.init_scorer(tc), x, key, repeats=2)}]
  ddim = tc.copy_and_resolve_references()
  with ddim.unlocked():
    ddim.sampler.kind, ddim.sampler.num_steps, ddim.sampler.eta = "ddim", 50, 0.0
    ddim.anomaly.heal_steps, ddim.anomaly.num_draws, ddim.anomaly.antithetic = 0, 1, False
  rows.append({"teacher": "DDIM-50 healing", **scorer_speed(teacher_lib.init_scorer(ddim), x, key, repeats=2)})
  return rows


MIXED_SIZES = [(227, 227), (170, 227), (227, 170), (300, 400), (400, 300), (640, 480), (480, 640), (256, 256), (227, 227)]
MIXED_SIZES += [(200, 150), (150, 200)]


def predict_rows(config: ml_collections.ConfigDict, key: jax.Array) -> list[dict]:
  """Predict-mode throughput (buckets, tiles, batching, host pooling included): 227x227 images, one 4000x3000 photo,
  and a mixed folder of 11 images of 9 sizes (how many compilations it costs)."""
  rng = np.random.default_rng(0)
  kind = kinds.get(config.model.kind)
  cases = [
    ("227x227 images", [(227, 227)] * 32),
    ("4000x3000 photo", [(3000, 4000)]),
    ("mixed folder: 11 images, 9 sizes", MIXED_SIZES),
  ]  # fmt: skip
  rows = []
  for name, sizes in cases:
    scorer = kind.init_scorer(config)  # a fresh compilation cache per case
    images = (pipeline.resize_image(rng.integers(60, 200, (*hw, 3), dtype=np.uint8), config.data.resize) for hw in sizes)
    stats, batch = Stats(), config.eval.batch_size
    with Busy() as busy:
      t0 = time.perf_counter()
      for _ in iter_maps(
        scorer, ((i, i, im) for i, im in enumerate(images)), key, batch_size=batch, tile=tiling(config), stats=stats
      ):
        pass
      wall = time.perf_counter() - t0
    run_s = max(wall - stats.compile_seconds, 1e-9)
    rows.append({
      "images": name, "n": len(sizes), "seconds": wall, "compile_seconds": stats.compile_seconds,
      "compilations": len(scorer.compiled), "images_per_second": len(sizes) / run_s,
      "gflops_per_second": stats.flops / run_s / 1e9, "cores_busy": busy.cores,
    })  # fmt: skip
  return rows


PREDICT_FOLDER = 32  # 227x227 JPEGs, each with a dark line, for the predict command's row


def predict_folder_row(config: ml_collections.ConfigDict, key: jax.Array) -> dict:
  """The predict command (predict.predict) on a folder of PREDICT_FOLDER 227x227 JPEGs, as a user runs it: decoding
  in a background thread, scoring, the red mask, crack measures, the four-panel figure, thumbnail and CSV rows of
  every photo (threshold 0: every photo flagged, the most work per photo), the report page. Freshly initialised
  parameters and a fixed mask decision (no calibration), each in a temporary workdir."""
  from PIL import Image

  from crackjax import calibration, mask, predict

  rng = np.random.default_rng(0)
  scorer = kinds.get(config.model.kind).init_scorer(config)
  with tempfile.TemporaryDirectory() as tmp:
    folder, workdir = os.path.join(tmp, "photos"), os.path.join(tmp, "run")
    os.makedirs(folder)
    os.makedirs(workdir)
    for i in range(PREDICT_FOLDER):
      img = rng.integers(90, 170, (227, 227, 3), dtype=np.uint8)
      img[100 + i % 20 : 103 + i % 20, 20:200] //= 3
      Image.fromarray(img).save(os.path.join(folder, f"{i:03d}.jpg"), quality=90)
    d = mask.Decision(low=1.0, high=1.0, min_length=8.0, colour_max=1.0, calibration={"model": calibration.digest(scorer)})
    mask.save(os.path.join(workdir, mask.FILE), d)
    c = config.copy_and_resolve_references()
    with c.unlocked():
      c.predict.update(input=folder, threshold=0.0, overlays="all", redo=True)
    with Busy() as busy:
      predict.predict(c, workdir, scorer)
    with open(os.path.join(workdir, "predict", "photos", "summary.json")) as f:
      s = json.load(f)
  flops = scorer_flops(scorer)
  model_s = s["model_seconds"]
  return {
    "images": PREDICT_FOLDER, "seconds": s["seconds"], "compile_seconds": s["compile_seconds"],
    "images_per_second": PREDICT_FOLDER / max(s["seconds"] - s["compile_seconds"], 1e-9),
    "model_share": model_s / max(s["seconds"] - s["compile_seconds"], 1e-9),
    "gflops_per_second": flops * PREDICT_FOLDER / max(s["seconds"] - s["compile_seconds"], 1e-9) / 1e9,
    "cores_busy": busy.cores,
  }  # fmt: skip


def scorer_flops(scorer: Scorer) -> float:
  """FLOPs per image of the scorer's compiled maps (the mean over the shapes it compiled)."""
  return float(np.mean([flops for _, _, flops in scorer.compiled.values()]))


def benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict:
  size = config.data.synthetic.image_size if not config.data.root else 128
  batch = config.eval.batch_size
  key = streams.key(config.seed, "init")
  x = jax.random.uniform(key, (batch, size, size, 3), minval=-1, maxval=1)
  scorer = kinds.get(config.model.kind).init_scorer(config)
  out = {
    "command": " ".join(sys.argv),
    "machine": machine(),
    "peak": machine_peak(),
    "image_size": size,
    "eval_batch": batch,
    "kind": config.model.kind,
    "model": scorer_speed(scorer, x, key, repeats=5),
  }
  if config.model.kind == "teacher":
    out.update(_teacher_rows(config, x, key))
  if config.model.kind == "student":
    out["teachers"] = student_teachers(config, x, key)
  if config.benchmark.predict:
    out["predict"] = predict_rows(config, key)
    out["predict_folder"] = predict_folder_row(config, key)
  os.makedirs(workdir, exist_ok=True)
  out["peak_memory_gib"] = peak_memory_gib()
  with open(os.path.join(workdir, "benchmark.json"), "w") as f:
    json.dump(out, f, indent=2)
  print(format_report(out), flush=True)
  return out


def format_report(r: dict) -> str:
  m = r["model"]
  peak = r["peak"]["matmul_gflops_per_second"]
  share = lambda gflops: f"{gflops:.1f} GFLOP/s, {100 * gflops / peak:.0f}% of the matmul peak"  # noqa: E731
  lines = [
    f"command : {r['command']}",
    f"machine : {r['machine']}",
    f"peak    : matmul {peak:.1f} GFLOP/s, 3x3 convolution {r['peak']['conv_gflops_per_second']:.1f} GFLOP/s "
    f"(float32, {PEAK_MATMUL}^3; {'x'.join(map(str, PEAK_CONV))})",
    f"images  : {r['image_size']}x{r['image_size']}, batch {r['eval_batch']}",
    f"model   : {m['description']}: {m['params']:,} params, {m['gflops_per_image']:.3f} GFLOP/image, "
    f"{m['images_per_second']:.2f} images/s (compile {m['compile_seconds']:.1f} s), "
    + share(m["gflops_per_image"] * m["images_per_second"])
    + f", {m['cores_busy']:.2f} cores busy",
  ]
  if "train_steps_per_second" in r:
    lines.append(
      f"train   : {r['train_steps_per_second']:.2f} steps/s (batch {r['train_batch']}, {r['train_crop']}x{r['train_crop']} "
      f"crops, {r.get('train_devices', 1)} device(s)), {r['train_gflops_per_step']:.1f} GFLOP/step, "
      + share(r["train_gflops_per_second"])
      + f", {r['train_cores_busy']:.2f} cores busy"
    )
    lines.append(
      f"loop    : {r['loop_steps_per_second']:.2f} steps/s as main.py trains on {jax.device_count()} device(s) (crops, "
      f"transfer, logs, a checkpoint; compilation left out), "
      f"{100 * r['loop_steps_per_second'] / r['train_steps_per_second']:.0f}% of the bare step, "
      f"{r['loop_cores_busy']:.2f} cores busy"
    )
    lines.append("healing : steps  images/s  GFLOP/image  compile s   (one noise draw)")
    lines += [
      f"          {h['heal_steps']:5d}  {h['images_per_second']:8.2f}  {h['gflops_per_image']:11.3f}  {h['compile_seconds']:9.1f}"
      for h in r["healing"]
    ]
  if r.get("predict"):
    lines.append(
      "predict : images                               n  images/s  compilations  compile s  GFLOP/s  of peak  cores"
      "  (resize, buckets, tiles)"
    )
    lines += [
      f"          {p['images']:<34} {p['n']:3d}  {p['images_per_second']:8.2f}  {p['compilations']:12d}  "
      f"{p['compile_seconds']:9.1f}  {p.get('gflops_per_second', float('nan')):7.1f}  "
      f"{100 * p.get('gflops_per_second', float('nan')) / peak:6.0f}%  {p.get('cores_busy', float('nan')):5.2f}"
      for p in r["predict"]
    ]
  if r.get("predict_folder"):
    pf = r["predict_folder"]
    lines.append(
      f"command : predict on a folder of {pf['images']} 227x227 JPEGs, every photo flagged (decode, score, red mask, "
      f"cracks, figure, thumbnail, CSV, report): {pf['images_per_second']:.2f} images/s (compile "
      f"{pf['compile_seconds']:.1f} s), the model {100 * pf['model_share']:.0f}% of the time, "
      + share(pf["gflops_per_second"])
      + f", {pf['cores_busy']:.2f} cores busy"
    )
  for t in r.get("teachers", []):
    lines.append(
      f"teacher : {t['teacher']}: {t['description']}, {t['gflops_per_image']:.2f} GFLOP/image, {t['images_per_second']:.2f} "
      f"images/s -> student {m['images_per_second'] / t['images_per_second']:.0f}x faster, "
      f"{t['params'] / m['params']:.1f}x fewer params"
    )
  lines.append(f"memory  : peak {r['peak_memory_gib']:.2f} GiB resident")
  return "\n".join(lines)
