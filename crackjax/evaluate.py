"""The evaluation job: score val and test with a Scorer, choose the threshold on val, report on test.

Writes into `out_dir`: <workdir> for the training root, <workdir>/eval/<name>/ for another root or a named
re-scoring (earlier results are never overwritten). Scoring is crackjax/scorer.py, the threshold
crackjax/thresholds.py, the files crackjax/report.py; this module only puts them in order.
"""

from __future__ import annotations

import json
import logging
import os

import jax
import ml_collections
import numpy as np

from crackjax import calibration, metrics, report, streams, thresholds
from crackjax.data import builders, pipeline
from crackjax.errors import UserError
from crackjax.scorer import Scorer, compute_maps, fill_maps, tiling

log = logging.getLogger(__name__)


def output_dir(config: ml_collections.ConfigDict, workdir: str) -> tuple[str, str]:
  """(folder, name) of an evaluation: the workdir itself for the training root, <workdir>/eval/<name>/ when
  config.eval.root or config.eval.name is set (so a named re-scoring never overwrites the run's own results)."""
  root = config.eval.root or config.data.root
  name = config.eval.name or (os.path.basename(os.path.abspath(root).rstrip("/")) if root else "synthetic")
  named = bool(config.eval.root or config.eval.name)
  return (os.path.join(workdir, "eval", name) if named else workdir), name


def train_info(workdir: str) -> dict:
  """What the training reported of its data (<workdir>/train_info.json), {} when it is not there."""
  path = os.path.join(workdir, "train_info.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def val_only(config, out_dir, name, val, val_res, val_metrics, threshold, source, scorer) -> dict:
  """metrics.json with the val section alone (config.eval.test=False), for choosing settings without test."""
  if val is None or val_metrics is None:
    raise UserError("config.eval.test=False needs a val split with good and cracked images to report on")
  f1m, _ = metrics.f1_max(val_res.scores, val.labels)
  out = {
    "val": {**val_metrics, "f1_max": f1m, **metrics.at_threshold(val_res.scores, val.labels, threshold)},
    "image": {"threshold": threshold, "threshold_source": source},
    "speed": {"images_per_second": len(val) / max(val_res.seconds, 1e-9), "gflops_per_image": val_res.flops_per_image / 1e9},
    "model": dict(scorer.info),
    "data": {"root": config.eval.root or config.data.root or "synthetic", "name": name, "n_val": len(val)},
  }
  os.makedirs(out_dir, exist_ok=True)
  report.write_json(os.path.join(out_dir, "metrics.json"), out)
  report.write_scores(os.path.join(out_dir, "val_scores.csv"), val.filenames, val.labels, val_res.scores, threshold)
  log.info("%s (val only): AUROC %.4f  AP %.4f  F1-max %.4f", name, out["val"]["auroc"], out["val"]["ap"], f1m)
  return out


def split_key(config: ml_collections.ConfigDict, split: str) -> jax.Array:
  """The noise key an evaluation scores `split` ('val' or 'test') with; each image's id is its row in the split."""
  return jax.random.fold_in(streams.key(config.seed, "eval"), {"val": 0, "test": 1}[split])


def score_val(config: ml_collections.ConfigDict, builder, scorer: Scorer, kw: dict, workdir: str):
  """(val split, its MapResult, threshold, source, val metrics or None, synthetic-crack scores or None): val scored
  (its maps kept only where no streaming asks to drop them), with synthetic cracks where it has none of its own,
  and the threshold chosen on it (thresholds.choose)."""
  val = val_res = val_metrics = None
  if "val" in builder.info.splits:
    stream = config.data.stream
    val = pipeline.load_split(builder, "val", resize=config.data.resize, max_images=config.eval.max_images, stream=stream)
    no_maps = np.zeros(len(val), bool) if stream and not config.eval.save_maps else None  # val needs scores only
    val_res = compute_maps(scorer, val.images, split_key(config, "val"), desc="val", keep=no_maps, **kw)
  synthetic = synthetic_scores(config, scorer, val, kw)
  threshold, source = thresholds.choose(
    None if val is None else val_res.scores,
    None if val is None else val.labels,
    percentile=config.eval.threshold_percentile,
    workdir=workdir,
    synthetic=synthetic,
  )
  if val is not None and (val.labels == 1).any() and (val.labels == 0).any():
    val_metrics = {
      "auroc": metrics.auroc(val_res.scores, val.labels),
      "ap": metrics.average_precision(val_res.scores, val.labels),
      "n_good": int((val.labels == 0).sum()),
      "n_crack": int((val.labels == 1).sum()),
    }
  log.info("threshold %.6g (%s)", threshold, source)
  return val, val_res, threshold, source, val_metrics, synthetic


def synthetic_scores(config: ml_collections.ConfigDict, scorer: Scorer, val, kw: dict) -> np.ndarray | None:
  """Where val has sound photos only: the scores of (up to mask.calibration_images of) them with a synthetic crack
  drawn in (calibration.cracked_copies), the cracks val lacks; else None."""
  if val is None or (val.labels == 1).any() or not (val.labels == 0).any():
    return None
  sound = [val.images[i] for i in np.flatnonzero(val.labels == 0)[: config.mask.calibration_images]]
  cracked, _ = calibration.cracked_copies(sound, config.seed, calibration.CRACK_WIDTH)
  ids = [calibration.CRACK_IDS + i for i in range(len(cracked))]
  return compute_maps(scorer, cracked, split_key(config, "val"), desc="val, synthetic cracks", ids=ids, **kw).scores


def evaluate(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> dict:
  """Evaluates `scorer` on config.eval.root (or data.root); returns the metrics written."""
  root = config.eval.root or config.data.root
  out_dir, name = output_dir(config, workdir)
  builder = builders.builder_for(config, workdir, root)
  if config.eval.test and "test" not in builder.info.splits:
    raise UserError(f"{root or 'synthetic data'} has no test split to evaluate on; {builders.EXPECTED_LAYOUT}")
  if not config.eval.test and "val" not in builder.info.splits:  # val only: a setting is chosen there
    raise UserError(f"{root} has no val split for a val-only evaluation (eval.test=False); {builders.EXPECTED_LAYOUT}")
  kw = dict(batch_size=config.eval.batch_size, tile=tiling(config))
  val, val_res, threshold, source, val_metrics, synthetic = score_val(config, builder, scorer, kw, workdir)
  if not config.eval.test and out_dir == workdir:  # val only: never over the run's own metrics.json
    out_dir = os.path.join(workdir, "eval", "val")
  if val is not None and config.eval.save_maps:
    report.write_maps(
      os.path.join(out_dir, "maps_val.npz"), val.filenames, val.labels, val_res.maps, scorer.localization.darkness
    )
  if not config.eval.test:  # choosing a setting: val only, the test split stays unseen
    return val_only(config, out_dir, name, val, val_res, val_metrics, threshold, source, scorer)
  # The red mask's decision: calibrated afresh on the training root's val photos when this evaluates that root, the
  # model's own (<workdir>/mask_decision.json) when it evaluates another root.
  same_root = not config.eval.root or os.path.abspath(config.eval.root) == os.path.abspath(config.data.root or "")
  sound = None
  if same_root and val is not None:  # indexed one by one: a streamed split decodes only these
    sound = [val.images[i] for i in np.flatnonzero(val.labels == 0)[: config.mask.calibration_images]]
  decision = calibration.decision(config, workdir, scorer, fresh=same_root and out_dir == workdir, sound=sound)
  test, res = score_test(config, builder, scorer, threshold, kw, out_dir)
  data_info = {
    "root": root or "synthetic",
    "name": name,
    "resize": config.data.resize,
    "n_test": len(test),
    "n_val": 0 if val is None else len(val),
    "skipped_files": builders.skipped_files(builder, "val") + builders.skipped_files(builder, "test"),
    **train_info(workdir),
  }
  out = report.report(
    config=config, out_dir=out_dir, test=test, res=res, threshold=threshold, threshold_source=source,
    model_info=dict(scorer.info), data_info=data_info, decision=decision, val_metrics=val_metrics,
  )  # fmt: skip
  if val is not None:
    report.write_scores(os.path.join(out_dir, "val_scores.csv"), val.filenames, val.labels, val_res.scores, threshold)
    scores, labels = val_res.scores, val.labels
    if synthetic is not None:  # recall is measured on the synthetic cracks where val has none of its own
      scores, labels = (
        np.r_[scores[labels == 0], synthetic],
        np.r_[np.zeros(int((labels == 0).sum()), int), np.ones(len(synthetic), int)],
      )
    points = thresholds.operating_points(scores, labels, threshold, (config.predict.operating_point,))
    report.write_json(os.path.join(out_dir, "operating_points.json"), {"threshold_source": source, "points": points})
    for p in points.values():
      log.info(
        "operating point %-18s threshold %.6g  val recall %s  val false-alarm rate %s", p["spec"], p["threshold"],
        *("-" if p[k] is None else f"{p[k]:.3f}" for k in ("val_recall", "val_false_alarm_rate")),
      )  # fmt: skip
  log_result(name, out)
  return out


def score_test(config: ml_collections.ConfigDict, builder, scorer: Scorer, threshold: float, kw: dict, out_dir: str):
  """(test split, its MapResult): with data.stream only the maps the pixel metrics and the sound photos' red need
  are kept, and the figures' few images are scored again."""
  stream = config.data.stream
  drop_maps = stream and not config.eval.save_maps
  test = pipeline.load_split(builder, "test", resize=config.data.resize, max_images=config.eval.max_images, stream=stream)
  keep = (report.pixel_metric_images(test) | (test.labels == 0)) if drop_maps else None
  res = compute_maps(scorer, test.images, split_key(config, "test"), desc="test", keep=keep, **kw)
  if config.eval.save_maps:
    report.write_maps(os.path.join(out_dir, "maps_test.npz"), test.filenames, test.labels, res.maps, scorer.localization.darkness)
  if stream:
    groups = report.figure_groups(test.labels, res.scores, threshold, config.eval.num_examples)
    fill_maps(scorer, test.images, res, [i for g in groups.values() for i in g], split_key(config, "test"), **kw)
  return test, res


def log_result(name: str, out: dict) -> None:
  im = out["image"]
  num = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731  (None: the test set lacks a class)
  log.info(
    "%s: image AUROC %s  AP %s  F1@threshold %s  recall %s  precision %s%s",
    name,
    *(num(im[k]) for k in ("auroc", "ap", "f1", "recall", "precision")),
    f"  pixel AUROC {num(out['pixel']['auroc'])}  AUPRO {num(out['pixel']['aupro'])}" if "pixel" in out else "",
  )
  if "pixel" in out:
    pm = out["pixel"]["mask"]
    log.info(
      "%s: red mask as shipped: pixel precision %s  recall %s  F1 %s  IoU %s",
      name,
      *(num(pm[k]) for k in ("precision", "recall", "f1", "iou")),
    )
  if "mask_on_good" in out:
    g = out["mask_on_good"]
    log.info(
      "%s: sound photos: %s of %d passed carry no red; flagged ones (%d) median red share %s",
      name, num(g["passed_without_red"]), g["n_passed"], g["n_flagged"], num(g["red_share_flagged"]),
    )  # fmt: skip
