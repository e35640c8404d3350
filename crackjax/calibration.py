"""A model's red-mask decision (crackjax/mask.py), chosen on its training root's own sound val photos with
synthetic cracks drawn in: no real crack label is read.

Each of up to `mask.calibration_images` val/good photos is scored twice, as it is (sound concrete) and with one
crack of the synthetic model drawn in at the working resolution (crackjax/synth.py: draw_fine_crack, keeping its
course across the photo, widths log-uniform in CRACK_WIDTH), and mask.calibrate picks the decision with the
highest pooled pixel F1. The decision is saved as <workdir>/mask_decision.json with a digest of the scorer's
settings, so an evaluation with other map settings calibrates again instead of reusing a decision made for other
maps. Fields mask.low, mask.high and mask.min_length, where set (>= 0), override the calibrated values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os

import ml_collections
import numpy as np

from crackjax import mask, metrics, streams, synth
from crackjax.data import builders, pipeline
from crackjax.errors import UserError
from crackjax.scorer import Scorer, compute_maps, tiling, with_params

log = logging.getLogger(__name__)

CRACK_WIDTH = (1.0, 8.0)  # the synthetic cracks' widths, working-resolution pixels (log-uniform)
CRACK_IDS = 1 << 24  # noise ids of the cracked copies: apart from the sound photos' (their index in val)


def digest(scorer: Scorer) -> str:
  """What the localization maps depend on besides the weights (the settings in the scorer's info)."""
  return hashlib.sha256(json.dumps(dict(scorer.info), sort_keys=True, default=str).encode()).hexdigest()[:12]


def cracked_copies(images: list[np.ndarray], seed: int, width: tuple[float, float]) -> tuple[list, list]:
  """Each uint8 photo with one synthetic crack drawn in, and its exact mask (deterministic in seed)."""
  out, masks = [], []
  for i, img in enumerate(images):
    rng = streams.rng(seed, "calibration_cracks", i)
    x, m = synth.draw_fine_crack(rng, img.astype(np.float32) / 255.0, width=tuple(width), persistent=True)
    out.append((x * 255.0 + 0.5).astype(np.uint8))
    masks.append(m)
  return out, masks


def val_sound(config: ml_collections.ConfigDict, workdir: str) -> list[np.ndarray]:
  """Up to mask.calibration_images of the training root's sound val photos (at the working resolution)."""
  builder = builders.builder_for(config, workdir, config.data.root)
  if "val" not in builder.info.splits:
    raise UserError(f"{config.data.root or 'the synthetic data'} has no val split to calibrate the red mask on")
  val = pipeline.load_split(builder, "val", resize=config.data.resize)
  return [img for img, y in zip(val.images, val.labels) if y == 0][: config.mask.calibration_images]


def score_pair(config: ml_collections.ConfigDict, scorer: Scorer, sound: list, cracked: list, desc: str) -> tuple:
  """The maps of the sound photos and of their cracked copies (noise ids CRACK_IDS + i), on the calibration's key:
  what the mask's calibration and early stopping's validation both score."""
  key, kw = streams.key(config.seed, "calibration"), dict(batch_size=config.eval.batch_size, tile=tiling(config))
  a = compute_maps(scorer, sound, key, desc=f"{desc} (sound)", **kw)
  b = compute_maps(scorer, cracked, key, desc=f"{desc} (cracked)", ids=[CRACK_IDS + i for i in range(len(cracked))], **kw)
  return a, b


def synthetic_val(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer):
  """validate(unet_params) -> the image AUROC of val's sound photos against the same photos with a synthetic crack,
  for the teacher `scorer`'s maps with the UNet parameters of a checkpoint under training (scorer.with_params:
  compiled once)."""
  sound = val_sound(config, workdir)
  if not sound:
    raise UserError("config.train.patience > 0 validates on val's sound photos, and val has none")
  cracked, _ = cracked_copies(sound, config.seed, CRACK_WIDTH)
  labels = np.r_[np.zeros(len(sound), int), np.ones(len(cracked), int)]

  def validate(params) -> float:
    a, b = score_pair(config, with_params(scorer, {"unet": params}), sound, cracked, "validation")
    return metrics.auroc(np.r_[a.scores, b.scores], labels)

  return validate


def calibrate(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer, sound: list | None = None) -> mask.Decision:
  """Chooses and saves the decision; sound: the val/good photos when the caller has them loaded."""
  sound = val_sound(config, workdir) if sound is None else list(sound)[: config.mask.calibration_images]
  if not sound:
    raise UserError("the red mask is calibrated on val's sound photos, and val has none")
  cracked, gts = cracked_copies(sound, config.seed, CRACK_WIDTH)
  log.info("calibrating the red mask on %d sound val photos, each also with a synthetic crack", len(sound))
  a, b = score_pair(config, scorer, sound, cracked, "mask calibration")
  zeros = [np.zeros(m.shape, np.uint8) for m in a.maps]
  d = mask.calibrate(a.maps + b.maps, zeros + gts, border=border_of(scorer), on_good=config.mask.on_good)
  # the same photos' image scores, sound against cracked: a label-free val AUROC of the model on this surface
  labels = np.r_[np.zeros(len(sound), int), np.ones(len(cracked), int)]
  image_auroc = metrics.auroc(np.r_[a.scores, b.scores], labels)
  d = dataclasses.replace(d, calibration={**d.calibration, "image_auroc": image_auroc, "model": digest(scorer)})
  c = d.calibration
  log.info(
    "red mask: low %.4g, high %.4g, min length %g px (synthetic cracks: precision %.3f, recall %.3f, F1 %.3f; "
    "image AUROC of the sound photos against their cracked copies %.4f)",
    d.low, d.high, d.min_length, c["precision"] or 0, c["recall"] or 0, c["f1"] or 0, image_auroc,
  )  # fmt: skip
  mask.save(os.path.join(workdir, mask.FILE), d)
  return d


def border_of(scorer: Scorer) -> int:
  return scorer.pooling.border


def decision(
  config: ml_collections.ConfigDict, workdir: str, scorer: Scorer, *, fresh: bool = False, sound=None
) -> mask.Decision:
  """The model's decision: <workdir>/mask_decision.json where it was made for these maps (and not `fresh`), else
  calibrated now; then config.mask's overrides."""
  path = os.path.join(workdir, mask.FILE)
  d = None
  if not fresh and os.path.exists(path):
    try:
      d = mask.load(path)
    except (OSError, ValueError, TypeError) as e:
      log.warning("%s is unreadable (%s); calibrating the red mask again", path, e)
    if d is not None and d.calibration.get("model") != digest(scorer):
      log.info("%s was calibrated for other map settings; calibrating again", path)
      d = None
  if d is None:
    d = calibrate(config, workdir, scorer, sound)
  m = config.mask
  over = {k: float(m[k]) for k in ("low", "high", "min_length") if m[k] >= 0}
  return dataclasses.replace(d, on_good=bool(m.on_good), explain=bool(m.explain), **over)
