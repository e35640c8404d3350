"""The jobs `main.py` dispatches to: train-then-evaluate, evaluate, predict. Each takes (config, workdir)."""

from __future__ import annotations

import json
import logging
import os

import ml_collections

from crackjax import benchmark as benchmark_lib
from crackjax import evaluate as evaluate_lib
from crackjax import predict as predict_lib
from crackjax import train as train_lib
from crackjax.data import builders, pipeline

log = logging.getLogger(__name__)

# Fields that fix the shapes of the saved parameters: a workdir trained with other values cannot be resumed.
_MODEL_FIELDS = ("model", "schedule")


def check_workdir_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  now = json.loads(config.to_json())
  for section in _MODEL_FIELDS:
    for k, v in now[section].items():
      old = saved.get(section, {}).get(k)
      if old != v:
        raise ValueError(
          f"{workdir} was trained with config.{section}.{k}={old!r}, not {v!r}; "
          "use a new --workdir for a different model (or the saved value to continue)"
        )


def write_config(config: ml_collections.ConfigDict, path: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    f.write(config.to_json(indent=2))


def _train_images(config, workdir):
  builder = builders.builder_for(config, workdir, config.data.root)
  if "train" not in builder.info.splits:
    raise FileNotFoundError(
      f"{config.data.root} has no train/good images to learn normal concrete from; {builders.EXPECTED_LAYOUT}"
    )
  split = pipeline.load_split(builder, "train", resize=config.data.resize)
  skipped = list(builder.info.metadata.get("skipped_files", []))
  return split.images, {"n_train": len(split), "train_skipped_files": skipped}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  check_workdir_compatible(config, workdir)
  write_config(config, os.path.join(workdir, "config.json"))
  images, info = _train_images(config, workdir)
  state = train_lib.train(config, workdir, images)
  return evaluate_lib.evaluate(config, workdir, state.ema_params, train_info=info)


def train_only(config: ml_collections.ConfigDict, workdir: str) -> None:
  check_workdir_compatible(config, workdir)
  write_config(config, os.path.join(workdir, "config.json"))
  images, _ = _train_images(config, workdir)
  train_lib.train(config, workdir, images)


def _trained_config_params(config, workdir):
  check_workdir_compatible(config, workdir)
  state = train_lib.load_trained(config, workdir)
  return state.ema_params


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  params = _trained_config_params(config, workdir)
  out_dir, _ = evaluate_lib.output_dir(config, workdir)
  if out_dir != workdir:
    write_config(config, os.path.join(out_dir, "config.json"))
  saved = {}
  path = os.path.join(workdir, "metrics.json")
  if os.path.exists(path):
    with open(path) as f:
      saved = {k: v for k, v in json.load(f).get("data", {}).items() if k in ("n_train", "train_skipped_files")}
  log.info("Evaluating the trained model in %s (no training)", workdir)
  return evaluate_lib.evaluate(config, workdir, params, train_info=saved)


def predict(config: ml_collections.ConfigDict, workdir: str) -> str:
  return predict_lib.predict(config, workdir, _trained_config_params(config, workdir))


def benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict:
  return benchmark_lib.benchmark(config, workdir)
