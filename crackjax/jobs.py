"""The jobs `main.py` dispatches to. Each takes (config, workdir); model kinds are looked up in crackjax/kinds.py,
and every job after training takes the kind's Scorer without asking which kind made it."""

from __future__ import annotations

import logging
import os

import ml_collections

from crackjax import benchmark as benchmark_lib
from crackjax import evaluate as evaluate_lib
from crackjax import export as export_lib
from crackjax import failures as failures_lib
from crackjax import predict as predict_lib
from crackjax import runs
from crackjax import sweep as sweep_lib
from crackjax import toy as toy_lib
from crackjax.runs import check_workdir_compatible, evaluate, train_only, trained_scorer, write_config  # noqa: F401

log = logging.getLogger(__name__)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  if config.toy.target:
    runs.check_workdir_compatible(config, workdir)
    runs.write_config(config, os.path.join(workdir, "config.json"))
    return toy_lib.run(config, workdir)
  return runs.train_and_evaluate(config, workdir)


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
    raise ValueError(f"--mode=sweep sweeps a diffusion teacher's sampler; config.model.kind is {config.model.kind!r}")
  check_workdir_compatible(config, workdir)
  return sweep_lib.run(config, workdir)


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
