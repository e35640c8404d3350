"""The evaluation job: heal val and test images, score them, choose the threshold on val, report on test.

Writes metrics.json (keys in DESIGN.md), scores.csv (one row per test image) and plots/ into `out_dir`:
<workdir> for the training root, <workdir>/eval/<name>/ for another root (earlier results are never overwritten).
The threshold never looks at the test set: F1-max on val when val has cracks ('val_f1_max'), else a percentile of
val/good scores ('val_good_pNN'), else the threshold of the workdir's own evaluation ('workdir_metrics').
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from crackjax import anomaly, metrics, plots, samplers
from crackjax.data import builders, pipeline
from crackjax.train import make_schedule, unet_config
from crackjax.unet import UNet

log = logging.getLogger(__name__)


def heal_config(config: ml_collections.ConfigDict) -> anomaly.HealConfig:
  a, s = config.anomaly, config.sampler
  steps = a.heal_steps or samplers.heal_steps(
    num_steps=s.num_steps, t_start=a.t_start, num_timesteps=config.schedule.num_timesteps
  )
  return anomaly.HealConfig(
    sampler=s.kind,
    num_steps=steps,
    eta=s.eta,
    t_start=a.t_start,
    num_draws=a.num_draws,
    residual=a.residual,
    channels=a.channels,
    smoothing_sigma=a.smoothing_sigma,
    pooling=a.pooling,
    topk_fraction=a.topk_fraction,
  )


def with_healing(config: ml_collections.ConfigDict, variant: str = "", steps: int = 0) -> ml_collections.ConfigDict:
  """A copy of `config` that heals with sampler `variant` (a key of samplers.VARIANTS) and `steps` healing steps;
  "" and 0 keep the config's own."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    if variant:
      c.sampler.kind, c.sampler.eta = samplers.VARIANTS[variant]
    if steps:
      c.anomaly.heal_steps = steps
  return c


@dataclasses.dataclass
class MapResult:
  scores: np.ndarray  # [N]
  maps: list[np.ndarray]  # [H, W] each, unpadded
  seconds: float  # wall time of the healing, compilation excluded
  compile_seconds: float
  flops_per_image: float


def compiled_flops(compiled) -> float:
  """XLA's flop count of a compiled function (NaN where the backend gives none). Loop bodies count once."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and "flops" in cost else float("nan")


def forward_flops(config: ml_collections.ConfigDict, params, shape: tuple[int, ...]) -> float:
  """Flops of one UNet forward pass on a batch of `shape` [B, H, W, 3]."""
  model = UNet(unet_config(config))
  fwd = jax.jit(lambda p, x, t: model.apply({"params": p}, x, t))
  return compiled_flops(fwd.lower(params, jnp.zeros(shape), jnp.zeros(shape[:1], jnp.int32)).compile())


@dataclasses.dataclass
class Scorer:
  """What evaluation and prediction need from a model, teacher or student."""

  map_fn: Callable  # (params, x: [B, H', W', 3] padded, key, hw: static (H, W)) -> (map [B, H, W], score [B])
  params: Any
  multiple: int  # image sides are padded to a multiple of this
  flops_per_image: Callable[[tuple], float]  # padded batch shape -> flops per image
  info: dict  # the "model" section of metrics.json
  compiled: dict = dataclasses.field(default_factory=dict)  # (padded shape, size) -> executable, kept across calls


def make_map_fn(config: ml_collections.ConfigDict):
  """map_fn(params, x: [B, H', W', 3] padded, key, hw: static (H, W)) -> (map [B, H, W], score [B])."""
  model = UNet(unet_config(config))
  schedule = make_schedule(config)
  cfg = heal_config(config)

  def map_fn(params, x, key, hw):
    eps_fn = lambda x_t, t: model.apply({"params": params}, x_t, t)  # noqa: E731
    m, _ = anomaly.anomaly_map(eps_fn, schedule, x, key, cfg)
    m = m[:, : hw[0], : hw[1]]
    return m, anomaly.image_score(m, pooling=cfg.pooling, topk_fraction=cfg.topk_fraction)

  return jax.jit(map_fn, static_argnums=3)


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


def teacher_scorer(config: ml_collections.ConfigDict, params) -> Scorer:
  hc = heal_config(config)
  # The sampler's scan body is counted once by XLA: cost = forward x steps x draws (smoothing is negligible).
  flops = lambda shape: forward_flops(config, params, shape) / shape[0] * hc.num_steps * hc.num_draws  # noqa: E731
  info = {
    "kind": "teacher",
    "sampler": hc.sampler,
    "num_steps": config.sampler.num_steps,
    "heal_steps": hc.num_steps,
    "eta": hc.eta,
    "t_start": hc.t_start,
    "params": count_params(params),
    "residual": hc.residual,
    "channels": hc.channels,
    "pooling": hc.pooling,
    "topk_fraction": hc.topk_fraction,
    "smoothing_sigma": hc.smoothing_sigma,
    "num_draws": hc.num_draws,
  }
  return Scorer(make_map_fn(config), params, unet_config(config).downsample_factor, flops, info)


def compute_maps(scorer: Scorer, split: pipeline.Split, key: jax.Array, *, batch_size: int, desc: str = "") -> MapResult:
  """Anomaly maps and scores of every image in `split` (whole images, any size)."""
  n = len(split)
  scores = np.zeros(n, np.float32)
  maps: list = [None] * n
  compiled = scorer.compiled
  compile_s = run_s = 0.0
  flops = {}
  done, t_log = 0, time.time()
  for idx, x, hw in pipeline.eval_batches(split, batch_size=batch_size, multiple=scorer.multiple):
    k = jax.random.fold_in(key, int(idx[0]))
    if (x.shape, hw) not in compiled:  # images of different sizes can pad to the same shape
      t0 = time.time()
      compiled[x.shape, hw] = (scorer.map_fn.lower(scorer.params, x, k, hw).compile(), scorer.flops_per_image(x.shape))
      compile_s += time.time() - t0
    executable, flops[x.shape, hw] = compiled[x.shape, hw]
    t0 = time.time()
    m, s = jax.device_get(executable(scorer.params, x, k))
    run_s += time.time() - t0
    for j, i in enumerate(idx):
      maps[i], scores[i] = m[j], s[j]
    done += len(idx)
    if time.time() - t_log > 20 or done == n:
      log.info("scoring %s: %d/%d images (%.1f s, %.2f images/s)", desc, done, n, run_s, done / max(run_s, 1e-9))
      t_log = time.time()
  return MapResult(scores, maps, run_s, compile_s, float(np.mean(list(flops.values()))) if flops else float("nan"))


def choose_threshold(config, val: MapResult | None, val_labels: np.ndarray | None, workdir: str) -> tuple[float, str]:
  if val is not None and val_labels is not None and (val_labels == 1).any() and (val_labels == 0).any():
    _, th = metrics.f1_max(val.scores[val_labels >= 0], val_labels[val_labels >= 0])
    return th, "val_f1_max"
  if val is not None and val_labels is not None and (val_labels == 0).any():
    p = config.eval.threshold_percentile
    return float(np.percentile(val.scores[val_labels == 0], p)), f"val_good_p{p:g}"
  own = os.path.join(workdir, "metrics.json")
  if os.path.exists(own):
    with open(own) as f:
      return float(json.load(f)["image"]["threshold"]), "workdir_metrics"
  return float("nan"), "none"


def _nan_to_none(x):
  if isinstance(x, dict):
    return {k: _nan_to_none(v) for k, v in x.items()}
  if isinstance(x, float) and not np.isfinite(x):
    return None
  return x


def split_pixel_metrics(split: pipeline.Split, maps: list[np.ndarray]) -> dict | None:
  """Pixel metrics over the images with a mask and the good ones (all-zero masks); None where no image has a mask."""
  if not split.has_mask.any():
    return None
  idx = [i for i in range(len(split)) if split.has_mask[i] or split.labels[i] == 0]
  return metrics.pixel_metrics([maps[i] for i in idx], [split.masks[i] for i in idx])


def report(
  *,
  config,
  out_dir: str,
  test: pipeline.Split,
  res: MapResult,
  threshold: float,
  threshold_source: str,
  model_info: dict,
  data_info: dict,
  val_metrics: dict | None = None,
) -> dict:
  """Metrics, scores.csv and plots for a scored test split; returns the metrics dict (also written).

  `val_metrics` (image AUROC/AP on val, where val has both classes) shows what a setting was chosen on."""
  labelled = test.labels >= 0
  scores, labels = res.scores[labelled], test.labels[labelled]
  f1m, th_f1m = metrics.f1_max(scores, labels)
  image = {
    "auroc": metrics.auroc(scores, labels),
    "ap": metrics.average_precision(scores, labels),
    "f1_max": f1m,
    "threshold_f1_max": th_f1m,
    "threshold": threshold,
    "threshold_source": threshold_source,
    **metrics.at_threshold(scores, labels, threshold),
    "n_good": int((labels == 0).sum()),
    "n_crack": int((labels == 1).sum()),
  }
  out = {"image": image}
  pixel = split_pixel_metrics(test, res.maps)
  if pixel is not None:
    out["pixel"] = pixel
  n = len(test)
  out["speed"] = {
    "images_per_second": n / max(res.seconds, 1e-9),
    "seconds_per_image": res.seconds / max(n, 1),
    "gflops_per_image": res.flops_per_image / 1e9,
    "device": str(jax.devices()[0].device_kind),
    "num_devices": jax.device_count(),
    "compile_seconds": res.compile_seconds,
  }
  out["model"] = model_info
  out["data"] = data_info
  if val_metrics is not None:
    out["val"] = val_metrics
  out = _nan_to_none(out)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "metrics.json"), "w") as f:
    json.dump(out, f, indent=2)
  with open(os.path.join(out_dir, "scores.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["file", "label", "score", "verdict"])
    for i in range(n):
      w.writerow(
        [test.filenames[i], int(test.labels[i]), f"{res.scores[i]:.6g}", "crack" if res.scores[i] >= threshold else "good"]
      )
  write_plots(config, os.path.join(out_dir, "plots"), test, res, threshold, image["confusion"], model_info["pooling"])
  log.info("metrics -> %s", os.path.join(out_dir, "metrics.json"))
  return out


def figure_row(split: pipeline.Split, i: int, amap: np.ndarray, score: float, pooling: str) -> dict:
  """One row of a four-panel figure (plots.four_panel_rows) for image i of `split`."""
  return {
    "image": split.images[i],
    "map": amap,
    "units": anomaly.score_units(amap, pooling),
    "score": score,
    "label": split.labels[i],
    "filename": split.filenames[i],
    "gt": split.masks[i] if split.has_mask[i] else None,
  }


def write_plots(config, plot_dir: str, test: pipeline.Split, res: MapResult, threshold: float, conf: dict, pooling: str) -> None:
  labelled = test.labels >= 0
  s, y = res.scores[labelled], test.labels[labelled]
  plots.histogram(s, y, threshold, os.path.join(plot_dir, "histogram.png"))
  if (y == 1).any() and (y == 0).any():
    plots.roc(s, y, os.path.join(plot_dir, "roc.png"))
    plots.pr(s, y, os.path.join(plot_dir, "pr.png"))
  plots.confusion(conf, os.path.join(plot_dir, "confusion.png"))
  vmax = float(np.percentile(np.concatenate([m.ravel() for m in res.maps]), 99.9))
  k = config.eval.num_examples
  row = lambda i: figure_row(test, i, res.maps[i], float(res.scores[i]), pooling)  # noqa: E731
  good = np.flatnonzero(test.labels == 0)
  crack = np.flatnonzero(test.labels == 1)
  groups = {
    "true_positives": [i for i in crack[np.argsort(-res.scores[crack])] if res.scores[i] >= threshold][:k],
    "clean_passes": [i for i in good[np.argsort(res.scores[good])] if res.scores[i] < threshold][:k],
    "worst_misses": [i for i in crack[np.argsort(res.scores[crack])]][:k],
    "worst_false_alarms": [i for i in good[np.argsort(-res.scores[good])]][:k],
  }
  for name, idx in groups.items():
    if len(idx):
      plots.four_panel_rows(
        [row(i) for i in idx], vmax, threshold, os.path.join(plot_dir, f"{name}.png"), title=name.replace("_", " ")
      )


def output_dir(config: ml_collections.ConfigDict, workdir: str) -> tuple[str, str]:
  """(folder, name) of an evaluation: the workdir itself for the training root, <workdir>/eval/<name>/ when
  config.eval.root or config.eval.name is set (so a named re-scoring never overwrites the run's own results)."""
  root = config.eval.root or config.data.root
  name = config.eval.name or (os.path.basename(os.path.abspath(root).rstrip("/")) if root else "synthetic")
  named = bool(config.eval.root or config.eval.name)
  return (os.path.join(workdir, "eval", name) if named else workdir), name


def evaluate(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer, *, train_info: dict) -> dict:
  """Evaluates a teacher's or student's `scorer` on config.eval.root (or data.root); returns the metrics written."""
  root = config.eval.root or config.data.root
  out_dir, name = output_dir(config, workdir)
  builder = builders.builder_for(config, workdir, root)
  if "test" not in builder.info.splits:
    raise FileNotFoundError(f"{root or 'synthetic data'} has no test split to evaluate on; {builders.EXPECTED_LAYOUT}")
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)  # 0, 1: init and train keys
  val = val_res = None
  if "val" in builder.info.splits:
    val = pipeline.load_split(builder, "val", resize=config.data.resize, max_images=config.eval.max_images)
    val_res = compute_maps(scorer, val, jax.random.fold_in(key, 0), batch_size=config.eval.batch_size, desc="val")
  threshold, source = choose_threshold(config, val_res, None if val is None else val.labels, workdir)
  val_metrics = None
  if val is not None and (val.labels == 1).any() and (val.labels == 0).any():
    val_metrics = {
      "auroc": metrics.auroc(val_res.scores, val.labels),
      "ap": metrics.average_precision(val_res.scores, val.labels),
      "n_good": int((val.labels == 0).sum()),
      "n_crack": int((val.labels == 1).sum()),
    }
  log.info("threshold %.6g (%s)", threshold, source)
  test = pipeline.load_split(builder, "test", resize=config.data.resize, max_images=config.eval.max_images)
  res = compute_maps(scorer, test, jax.random.fold_in(key, 1), batch_size=config.eval.batch_size, desc="test")
  data_info = {
    "root": root or "synthetic",
    "name": name,
    "resize": config.data.resize,
    "n_test": len(test),
    "n_val": 0 if val is None else len(val),
    "skipped_files": list(builder.info.metadata.get("skipped_files", [])),
    **train_info,
  }
  out = report(
    config=config,
    out_dir=out_dir,
    test=test,
    res=res,
    threshold=threshold,
    threshold_source=source,
    model_info=scorer.info,
    data_info=data_info,
    val_metrics=val_metrics,
  )
  im = out["image"]
  num = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731  (None: the test set lacks a class)
  log.info(
    "%s: image AUROC %s  AP %s  F1@threshold %s  recall %s  precision %s%s",
    name,
    *(num(im[k]) for k in ("auroc", "ap", "f1", "recall", "precision")),
    f"  pixel AUROC {num(out['pixel']['auroc'])}  AUPRO {num(out['pixel']['aupro'])}" if "pixel" in out else "",
  )
  return out
