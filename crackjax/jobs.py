"""The jobs `main.py` dispatches to: train-then-evaluate, evaluate, predict. Each takes (config, workdir)."""

from __future__ import annotations

import json
import logging
import os

import ml_collections

from crackjax import benchmark as benchmark_lib
from crackjax import evaluate as evaluate_lib
from crackjax import failures as failures_lib
from crackjax import predict as predict_lib
from crackjax import student as student_lib
from crackjax import sweep as sweep_lib
from crackjax import toy as toy_lib
from crackjax import train as train_lib
from crackjax.config import validate
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
  if config.toy.target:
    check_workdir_compatible(config, workdir)
    write_config(config, os.path.join(workdir, "config.json"))
    return toy_lib.run(config, workdir)
  if config.student.kind:
    return student_train_and_evaluate(config, workdir)
  check_workdir_compatible(config, workdir)
  write_config(config, os.path.join(workdir, "config.json"))
  images, info = _train_images(config, workdir)
  state = train_lib.train(config, workdir, images)
  return evaluate_lib.evaluate(config, workdir, evaluate_lib.teacher_scorer(config, state.ema_params), train_info=info)


def train_only(config: ml_collections.ConfigDict, workdir: str) -> None:
  if config.student.kind:
    student_lib.train_student(config, workdir, teacher_scorer_for_student(config, workdir))
    return
  check_workdir_compatible(config, workdir)
  write_config(config, os.path.join(workdir, "config.json"))
  images, _ = _train_images(config, workdir)
  train_lib.train(config, workdir, images)


def trained_scorer(config, workdir) -> evaluate_lib.Scorer:
  """The trained model in `workdir` as a Scorer: the student when config.student.kind is set, else the teacher."""
  if config.student.kind:
    state, info = student_lib.load_student(config, workdir)
    return student_lib.student_scorer(config, state.params, info)
  check_workdir_compatible(config, workdir)
  return evaluate_lib.teacher_scorer(config, train_lib.load_trained(config, workdir).ema_params)


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  scorer = trained_scorer(config, workdir)
  out_dir, _ = evaluate_lib.output_dir(config, workdir)
  if out_dir != workdir:
    write_config(config, os.path.join(out_dir, "config.json"))
  saved = {}
  path = os.path.join(workdir, "metrics.json")
  if os.path.exists(path):
    with open(path) as f:
      saved = {k: v for k, v in json.load(f).get("data", {}).items() if k in ("n_train", "train_skipped_files")}
  log.info("Evaluating the trained model in %s (no training)", workdir)
  return evaluate_lib.evaluate(config, workdir, scorer, train_info=saved)


def predict(config: ml_collections.ConfigDict, workdir: str) -> str:
  return predict_lib.predict(config, workdir, trained_scorer(config, workdir))


def benchmark(config: ml_collections.ConfigDict, workdir: str) -> dict:
  return benchmark_lib.benchmark(config, workdir)


def sweep(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Samplers x healing steps of the teacher trained in `workdir` (crackjax.sweep)."""
  if config.student.kind:
    raise ValueError("--mode=sweep sweeps a diffusion teacher's sampler; config.student.kind must be ''")
  check_workdir_compatible(config, workdir)
  return sweep_lib.run(config, workdir, train_lib.load_trained(config, workdir).ema_params)


def failures(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Failure kinds of the model evaluated in `workdir` (crackjax.failures): galleries and rates."""
  return failures_lib.run(config, workdir, trained_scorer(config, workdir))


def teacher_config(config: ml_collections.ConfigDict, teacher_workdir: str) -> ml_collections.ConfigDict:
  """The config a teacher was trained and evaluated with (its config.json), which defines its maps."""
  path = os.path.join(teacher_workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"config.student.teacher_workdir={teacher_workdir!r} has no config.json: not a trained teacher's workdir"
    )
  with open(path) as f:
    saved = json.load(f)
  if saved["data"]["resize"] != config.data.resize:
    raise ValueError(
      f"the teacher in {teacher_workdir} works at data.resize={saved['data']['resize']}, the student at "
      f"{config.data.resize}; set --config.data.resize to match"
    )
  tc = config.copy_and_resolve_references()
  with tc.unlocked():
    tc.student.kind = ""
    for section in ("model", "schedule", "sampler", "anomaly", "train"):
      for k, v in saved.get(section, {}).items():
        if k in tc[section]:  # fields added since the teacher was trained keep their defaults
          tc[section][k] = tuple(v) if isinstance(v, list) else v
  # The student may ask the same teacher for maps healed another way (DDPM vs DDIM teachers, same network).
  tc = evaluate_lib.with_healing(tc, config.student.teacher_sampler, config.student.teacher_heal_steps)
  try:
    validate(tc)
  except ValueError as e:
    raise ValueError(f"the teacher in {teacher_workdir} with the student's overrides: {e}") from None
  return tc


def teacher_scorer_for_student(config: ml_collections.ConfigDict, workdir: str) -> evaluate_lib.Scorer:
  """The student's teacher: config.student.teacher_workdir, or one trained (and evaluated) in <workdir>/teacher."""
  teacher_dir = config.student.teacher_workdir
  if not teacher_dir:
    teacher_dir = os.path.join(workdir, "teacher")
    tc = config.copy_and_resolve_references()
    with tc.unlocked():
      tc.student.kind = ""
      tc.data.tfds_dir = config.data.tfds_dir or os.path.join(workdir, "tfds")  # one prepared copy for both
    if not os.path.exists(os.path.join(teacher_dir, "metrics.json")):
      log.info("No student.teacher_workdir: training the teacher in %s first", teacher_dir)
      train_and_evaluate(tc, teacher_dir)
  tc = teacher_config(config, teacher_dir)
  return evaluate_lib.teacher_scorer(tc, train_lib.load_trained(tc, teacher_dir).ema_params)


def student_train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  write_config(config, os.path.join(workdir, "config.json"))
  teacher = teacher_scorer_for_student(config, workdir)
  state, info = student_lib.train_student(config, workdir, teacher)
  scorer = student_lib.student_scorer(config, state.params, info)
  return evaluate_lib.evaluate(config, workdir, scorer, train_info={"n_pool": info.n_pool})
