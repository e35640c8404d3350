"""Model kinds: one table from `config.model.kind` to the module that trains the kind and scores with it.

Every kind's module has
  SHAPE_FIELDS                        config fields ("section" or "section.field") that fix its saved parameters:
                                      a workdir trained with other values is refused before anything is written
  train(config, workdir) -> dict      trains (or resumes) in `workdir`; returns what evaluation reports of the
                                      training data ({"n_train", "train_skipped_files", ...})
  make_scorer(config, workdir)        the trained model as a scorer.Scorer (FileNotFoundError when there is none)

Evaluation, prediction, export, sweeps, benchmarks and failure galleries take a Scorer and never ask which kind
made it. Adding a kind touches its module, this table, a config and a test.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from crackjax import choices
from crackjax.errors import UserError

KINDS = {
  "teacher": "crackjax.teacher",  # the diffusion epsilon-UNet; its map: the healing residual
  "student": "crackjax.student",  # diffusion-free student distilled from a teacher's maps
  "ae": "crackjax.baselines.ae",  # convolutional autoencoder: reconstruction residual
  "vae": "crackjax.baselines.vae",  # variational autoencoder: negative reconstruction probability
  "memae": "crackjax.baselines.memae",  # memory-augmented autoencoder: residual of a reconstruction from prototypes
  "draem": "crackjax.baselines.draem",  # reconstructive + discriminative networks on synthetic anomalies
  "darkness": "crackjax.baselines.darkness",  # no learning: darkness of the smoothed luminance, or its black top-hat
  "blur": "crackjax.baselines.blur",  # no learning: the teacher's map around a Gaussian blur instead of the healing
}


assert tuple(KINDS) == choices.KINDS  # the names config.validate allows are the table's


def get(kind: str) -> ModuleType:
  if kind not in KINDS:
    raise UserError(f"config.model.kind must be one of {sorted(KINDS)}, got {kind!r}")
  return importlib.import_module(KINDS[kind])
