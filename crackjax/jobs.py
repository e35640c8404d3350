"""The jobs `main.py` dispatches to, each (config, workdir), and the workdir they share.

A workdir records what it was trained with (config.json, checked against the config before anything is written),
trains through its kind's module (crackjax/kinds.py), gives its trained model as a Scorer built whole
(`trained_scorer`), and is evaluated; every job after training takes that Scorer without asking which kind made
it. The toy memorization experiment is a job of its own (--mode=toy).
"""

from __future__ import annotations

import json
import logging
import os

import ml_collections

from crackjax import benchmark as benchmark_lib
from crackjax import distributed, kinds
from crackjax import evaluate as evaluate_lib
from crackjax import export as export_lib
from crackjax import failures as failures_lib
from crackjax import predict as predict_lib
from crackjax import sweep as sweep_lib
from crackjax import toy as toy_lib
from crackjax.data import builders
from crackjax.errors import UserError
from crackjax.scorer import Scorer

log = logging.getLogger(__name__)


def _value(config: ml_collections.ConfigDict | dict, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node.get(part) if isinstance(node, dict) else node[part]
    if node is None:
      return None
  return node


def _fields(section_or_field: str, config: ml_collections.ConfigDict) -> list[str]:
  node = _value(config, section_or_field)
  if isinstance(node, ml_collections.ConfigDict):
    return [f"{section_or_field}.{k}" for k in node.keys() if not isinstance(node[k], ml_collections.ConfigDict)]
  return [section_or_field]


def check_workdir_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses, naming the field, a config whose model differs from the one the workdir's checkpoints hold (its
  kind's SHAPE_FIELDS). Fields the saved config.json does not have (added to the code since) are not compared."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  now = json.loads(config.to_json())
  old_kind = _value(saved, "model.kind") or "teacher"
  if old_kind != config.model.kind:
    raise UserError(
      f"{workdir} holds a model of kind {old_kind!r}, not config.model.kind={config.model.kind!r}; "
      "use a new --workdir for another kind"
    )
  for field in ["model.kind"] + [f for s in kinds.get(config.model.kind).SHAPE_FIELDS for f in _fields(s, config)]:
    old, new = _value(saved, field), _value(now, field)
    if old is not None and old != new:
      raise UserError(
        f"{workdir} was trained with config.{field}={old!r}, not {new!r}; "
        "use a new --workdir for a different model (or the saved value to continue)"
      )


def write_config(config: ml_collections.ConfigDict, path: str) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json(indent=2))
  os.replace(tmp, path)


def check_layout(config: ml_collections.ConfigDict, *, need_test: bool) -> None:
  """Before any training: the data root has what the whole job needs (train/good, a way to choose a threshold,
  and test/ when the job evaluates), so that a 35-minute training never ends in a layout error."""
  if not config.data.root:
    return
  splits = builders.scan_root(config.data.root, config.data.val_fraction)
  if "train" not in splits:
    raise UserError(f"{config.data.root} has no images in train/good to learn normal concrete from; {builders.EXPECTED_LAYOUT}")
  if "val" not in splits:
    raise UserError(
      f"{config.data.root} has no val/ folder and config.data.val_fraction=0: nothing to choose the threshold on "
      "(the test set never chooses it); add ROOT/val/{good,crack}/ or set data.val_fraction > 0 (default 0.1)"
    )
  if need_test and "test" not in splits and not config.eval.root:
    raise UserError(
      f"{config.data.root} has no test/ folder to evaluate on (checked before training); add ROOT/test/{{good,crack}}/, "
      "or run --mode=train to train only"
    )


def _train(config: ml_collections.ConfigDict, workdir: str, *, need_test: bool) -> None:
  check_layout(config, need_test=need_test)
  check_workdir_compatible(config, workdir)  # before config.json is written: the run's record stays intact
  if distributed.is_writer():
    write_config(config, os.path.join(workdir, "config.json"))
  kind = kinds.get(config.model.kind)
  info = kind.train(config, workdir)
  if distributed.is_writer():
    with open(os.path.join(workdir, "train_info.json"), "w") as f:
      json.dump(info, f, indent=2)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  _train(config, workdir, need_test=True)
  if not distributed.is_writer():  # several hosts: process 0 evaluates and writes the report
    return {}
  return evaluate_lib.evaluate(config, workdir, trained_scorer(config, workdir))


def train_only(config: ml_collections.ConfigDict, workdir: str) -> None:
  _train(config, workdir, need_test=False)


def trained_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  """The model trained in `workdir`, of config.model.kind, as its kind's factory builds it: pooling and the
  localization map (config.anomaly's) included."""
  check_workdir_compatible(config, workdir)
  return kinds.get(config.model.kind).make_scorer(config, workdir)


# What defines a trained model's maps and verdicts without changing the model: an evaluation in the workdir itself
# records these in its config.json, so that the file describes the metrics.json beside it (a student distils the
# teacher as it was last evaluated).
EVALUATION_SECTIONS = ("sampler", "anomaly", "eval")


def record_evaluation(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config's EVALUATION_SECTIONS over those of <workdir>/config.json; the rest (how it was trained) stays."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    write_config(config, path)
    return
  with open(path) as f:
    saved = json.load(f)
  now = json.loads(config.to_json())
  saved.update({s: now[s] for s in EVALUATION_SECTIONS})
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(saved, f, indent=2)
  os.replace(tmp, path)


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  scorer = trained_scorer(config, workdir)
  out_dir, _ = evaluate_lib.output_dir(config, workdir)
  if out_dir != workdir:
    write_config(config, os.path.join(out_dir, "config.json"))
  log.info("Evaluating the trained model in %s (no training)", workdir)
  out = evaluate_lib.evaluate(config, workdir, scorer)
  if out_dir == workdir and distributed.is_writer():
    record_evaluation(config, workdir)  # after: a killed evaluation leaves the old record beside the old metrics
  return out


def predict(config: ml_collections.ConfigDict, workdir: str) -> str:
  return predict_lib.predict(config, workdir, trained_scorer(config, workdir))


def export(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The trained model as a folder that runs with jax and numpy only (crackjax.export)."""
  return export_lib.export(config, workdir, trained_scorer(config, workdir))


def benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict:
  return benchmark_lib.benchmark(config, workdir)


def sweep(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Samplers x healing steps of the diffusion teacher trained in `workdir` (crackjax.sweep)."""
  if config.model.kind != "teacher":
    raise UserError(f"--mode=sweep sweeps a diffusion teacher's sampler; config.model.kind is {config.model.kind!r}")
  check_workdir_compatible(config, workdir)
  return sweep_lib.run(config, workdir)


def toy(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The memorization experiment (crackjax/toy.py): a small DDPM on synthetic crack skeletons or heatmaps."""
  check_workdir_compatible(config, workdir)
  write_config(config, os.path.join(workdir, "config.json"))
  return toy_lib.run(config, workdir)


def failures(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Failure kinds of the model evaluated in `workdir` (crackjax.failures): galleries and rates."""
  return failures_lib.run(config, workdir, trained_scorer(config, workdir))


def held_folders(mode: str, config: ml_collections.ConfigDict, workdir: str) -> list[tuple[str, bool]]:
  """(folder, shared) of each lock `mode` holds while it runs (crackjax.files.Lock): a run that only reads the
  workdir and writes its own subfolder (predict; an evaluation with its own eval.name; export) shares the
  workdir and holds its subfolder; every other run holds the workdir alone."""
  if mode == "predict" and config.predict.input:
    return [(workdir, True), (predict_lib.output_dir(config, workdir), False)]
  out_dir = evaluate_lib.output_dir(config, workdir)[0]
  if mode == "evaluate" and out_dir != workdir:
    return [(workdir, True), (out_dir, False)]
  if mode == "export":
    return [(workdir, True), (os.path.join(workdir, "export"), False)]
  return [(workdir, False)]
