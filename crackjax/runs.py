"""A run's workdir: what it was trained with (config.json, checked against the config before anything is written),
its training through the kind's module (crackjax/kinds.py) and the pool classifier where asked, its trained model as
a Scorer, and its evaluation. jobs.py and the student (which may train its teacher first) both run through here."""

from __future__ import annotations

import json
import logging
import os

import ml_collections

from crackjax import classifier, distributed, kinds
from crackjax import evaluate as evaluate_lib
from crackjax.data import builders
from crackjax.scorer import Scorer, with_localization

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
    raise ValueError(
      f"{workdir} holds a model of kind {old_kind!r}, not config.model.kind={config.model.kind!r}; "
      "use a new --workdir for another kind"
    )
  for field in ["model.kind"] + [f for s in kinds.get(config.model.kind).SHAPE_FIELDS for f in _fields(s, config)]:
    old, new = _value(saved, field), _value(now, field)
    if old is not None and old != new:
      raise ValueError(
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
    raise FileNotFoundError(
      f"{config.data.root} has no images in train/good to learn normal concrete from; {builders.EXPECTED_LAYOUT}"
    )
  if "val" not in splits:
    raise ValueError(
      f"{config.data.root} has no val/ folder and config.data.val_fraction=0: nothing to choose the threshold on "
      "(the test set never chooses it); add ROOT/val/{good,crack}/ or set data.val_fraction > 0 (default 0.1)"
    )
  if need_test and "test" not in splits and not config.eval.root:
    raise FileNotFoundError(
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
  if config.classifier.weight:  # after the model: the pool classifier learns from its scorer's verdicts
    classifier.train(config, workdir, kind.make_scorer(config, workdir))
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
  """The model trained in `workdir`, of config.model.kind, as a Scorer, localizing with config.anomaly's
  localization_darkness, _sigma, _zscore and _background (whatever the kind: a step after the model, as the pooling
  is)."""
  check_workdir_compatible(config, workdir)
  scorer = kinds.get(config.model.kind).make_scorer(config, workdir)
  with_localization(scorer, config)
  if config.classifier.weight:  # the pool classifier's shift of each photo's score (crackjax/classifier.py)
    scorer.prior = classifier.load_prior(config, workdir)
    if scorer.prior is not None:
      scorer.info["classifier"] = {"name": config.classifier.name, "weight": config.classifier.weight}
  return scorer


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
