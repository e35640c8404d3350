"""Config strings (`configs/x.py:tiny,data=/path,steps=10`) and config invariants.

A config string is a comma-separated list of `key` (a flag) or `key=value`; each key has a type, and unknown keys
fail loudly with the list of known ones. `validate` checks the invariants no single field can (steps <= T, crop
divisible by the UNet's down-sampling, ...) and names the field at fault; `main.py` runs it again after
`--config.x=y` overrides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from crackjax import anomaly, choices, samplers, thresholds


@dataclasses.dataclass(frozen=True)
class ConfigArgs:
  tiny: bool = False  # shrink everything so a run finishes in seconds (tests, CI)
  data: str = ""  # an MVTec-layout root instead of the built-in synthetic concrete
  steps: int = 0  # sampler.num_steps (0: the config's own)
  large: bool = False  # the full-resolution, larger-UNet variant for a GPU or TPU (configs/base.py: make_large)


def parse_config_string(arg: str | None) -> ConfigArgs:
  fields = {f.name: f for f in dataclasses.fields(ConfigArgs)}
  values: dict[str, Any] = {}
  for part in filter(None, (p.strip() for p in (arg or "").split(","))):
    key, sep, raw = part.partition("=")
    key = key.strip()
    if key not in fields:
      raise ValueError(f"unknown config-string key {key!r} in {arg!r}; known keys: {sorted(fields)}")
    kind = fields[key].type
    if kind == "bool":
      if sep and raw.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config-string key {key!r} takes true/false, got {raw!r}")
      values[key] = (not sep) or raw.lower() in ("true", "1")
    elif not sep:
      raise ValueError(f"config-string key {key!r} needs a value: {key}=...")
    elif kind == "int":
      try:
        values[key] = int(raw)
      except ValueError:
        raise ValueError(f"config-string key {key!r} takes an integer, got {raw!r}") from None
    else:
      values[key] = raw
  return ConfigArgs(**values)


# Fields added to the code after runs were saved, with the value that reproduces what such a run did (a saved
# config.json without the field was made when only that behaviour existed). Other new fields keep the template's.
LEGACY = {
  "anomaly.average": "residual",  # until 914ac12 (2026-12-02) the draws' residuals were averaged
  "anomaly.antithetic": False,  # and the draws were independent
  "anomaly.mad_floor": anomaly.MAD_FLOOR,  # until 1ce8814 (2026-12-02) topk_mad's floor was this constant
  "anomaly.border": 0,  # and every map pixel counted
  "anomaly.localization_darkness": 0.0,  # until 11251b4 (2026-12-04) the image map was the localization map
  "anomaly.localization_zscore": 0.0,  # until 8560f2b (2026-12-04) its darkness was relative to the mean luminance
  "anomaly.localization_background": 0.0,  # until 2f9cdf8 (2026-12-04) that mean was its reference
  "anomaly.localization_sigma": 1.0,  # until 994e389 (2026-12-04) its luminance was smoothed with darkness.sigma (1.0)
}


def without_legacy(section: str, values: dict) -> dict:
  """`values` (a config section's fields, or a scorer's info) without the fields that sit at their LEGACY value:
  such a field reproduces what the code did before it existed, so a record or a cache key made before it was
  added describes the same behaviour."""
  missing = object()
  return {k: v for k, v in values.items() if LEGACY.get(f"{section}.{k}", missing) != v}


def config_from_saved(template: ml_collections.ConfigDict, saved: dict, sections: tuple[str, ...]) -> ml_collections.ConfigDict:
  """A copy of `template` with the `sections` of a saved config.json (a dict) written over it. Fields added to the
  code since the run was saved take their LEGACY value (what the run did) or else keep the template's; lists
  become tuples (JSON has no tuples)."""
  c = template.copy_and_resolve_references()
  with c.unlocked():
    for section in sections:
      if section not in saved:
        continue
      for k, v in saved[section].items():
        if k in c[section] and not isinstance(c[section][k], ml_collections.ConfigDict):
          c[section][k] = tuple(v) if isinstance(v, list) else v
      for field, value in LEGACY.items():
        s, k = field.split(".")
        if s == section and k not in saved[section]:
          c[section][k] = value
  return c


def _check(cond: bool, field: str, msg: str):
  if not cond:
    raise ValueError(f"config.{field}: {msg}")


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Raises ValueError naming the field whose value breaks an invariant; returns config."""
  _check(config.model.kind in choices.KINDS, "model.kind", f"must be one of {choices.KINDS}, got {config.model.kind!r}")
  T = config.schedule.num_timesteps
  _check(
    config.schedule.kind in ("linear", "cosine"), "schedule.kind", f"must be 'linear' or 'cosine', got {config.schedule.kind!r}"
  )
  _check(T >= 2, "schedule.num_timesteps", f"must be >= 2, got {T}")
  _check(
    0 < config.schedule.beta_start < config.schedule.beta_end < 1, "schedule.beta_start", "need 0 < beta_start < beta_end < 1"
  )
  _check(
    config.sampler.kind in samplers.SAMPLERS, "sampler.kind", f"must be one of {samplers.SAMPLERS}, got {config.sampler.kind!r}"
  )
  _check(
    1 <= config.sampler.num_steps <= T,
    "sampler.num_steps",
    f"must be in [1, schedule.num_timesteps={T}], got {config.sampler.num_steps}",
  )
  _check(0.0 <= config.sampler.eta, "sampler.eta", f"must be >= 0, got {config.sampler.eta}")
  _check(0 <= config.anomaly.t_start < T, "anomaly.t_start", f"must be in [0, {T - 1}], got {config.anomaly.t_start}")
  _check(
    config.anomaly.residual in anomaly.RESIDUALS,
    "anomaly.residual",
    f"must be one of {anomaly.RESIDUALS}, got {config.anomaly.residual!r}",
  )
  _check(
    config.anomaly.channels in anomaly.CHANNELS,
    "anomaly.channels",
    f"must be one of {anomaly.CHANNELS}, got {config.anomaly.channels!r}",
  )
  _check(
    config.anomaly.pooling in anomaly.POOLINGS,
    "anomaly.pooling",
    f"must be one of {anomaly.POOLINGS}, got {config.anomaly.pooling!r}",
  )
  _check(0 < config.anomaly.topk_fraction <= 1, "anomaly.topk_fraction", f"must be in (0, 1], got {config.anomaly.topk_fraction}")
  _check(config.anomaly.mad_floor > 0, "anomaly.mad_floor", f"must be > 0, got {config.anomaly.mad_floor}")
  _check(config.anomaly.border >= 0, "anomaly.border", f"must be >= 0 pixels, got {config.anomaly.border}")
  _check(
    0 <= config.anomaly.heal_steps <= config.anomaly.t_start + 1,
    "anomaly.heal_steps",
    f"must be in [0, anomaly.t_start + 1] (0 = the sampler's share), got {config.anomaly.heal_steps}",
  )
  _check(config.anomaly.num_draws >= 1, "anomaly.num_draws", f"must be >= 1, got {config.anomaly.num_draws}")
  _check(
    config.anomaly.average in anomaly.AVERAGES,
    "anomaly.average",
    f"must be one of {anomaly.AVERAGES}, got {config.anomaly.average!r}",
  )
  _check(
    not config.anomaly.antithetic or config.anomaly.num_draws % 2 == 0,
    "anomaly.antithetic",
    f"pairs the draws: anomaly.num_draws must be even, got {config.anomaly.num_draws}",
  )
  _check(config.anomaly.smoothing_sigma >= 0, "anomaly.smoothing_sigma", f"must be >= 0, got {config.anomaly.smoothing_sigma}")
  a = config.anomaly
  _check(a.line_sigma >= 0, "anomaly.line_sigma", f"must be >= 0, got {a.line_sigma}")
  _check(
    isinstance(a.pyramid, int) and 1 <= a.pyramid <= 4, "anomaly.pyramid", f"must be an integer in [1, 4], got {a.pyramid!r}"
  )
  for field, what in (  # finite and >= 0: the darkness weights and the localization map's sigmas
    ("darkness", "weight >= 0"),
    ("localization_darkness", "weight >= 0"),
    ("localization_zscore", "weight >= 0"),
    ("localization_background", "sigma >= 0 (map pixels; 0: the image's mean)"),
    ("localization_sigma", "sigma >= 0 (map pixels; 0: no smoothing)"),
  ):
    _check(0 <= a[field] < float("inf"), f"anomaly.{field}", f"must be a finite {what}, got {a[field]}")
  _check(
    a.line_sigma == 0 or a.smoothing_sigma > 0,
    "anomaly.smoothing_sigma",
    f"must be > 0 (the line filter's width) when anomaly.line_sigma > 0, got {a.smoothing_sigma}",
  )
  _check(
    0 <= config.train.t_min <= config.train.t_max < T,
    "train.t_max",
    f"need 0 <= t_min <= t_max < {T}, got [{config.train.t_min}, {config.train.t_max}]",
  )
  _check(
    config.train.t_min <= config.anomaly.t_start <= config.train.t_max,
    "anomaly.t_start",
    f"healing starts at t={config.anomaly.t_start}, outside the trained range [train.t_min, train.t_max] = "
    f"[{config.train.t_min}, {config.train.t_max}]",
  )
  _check(config.train.batch_size >= 1, "train.batch_size", f"must be >= 1, got {config.train.batch_size}")
  _check(config.train.num_steps >= 0, "train.num_steps", f"must be >= 0, got {config.train.num_steps}")
  _check(0 <= config.train.ema_decay < 1, "train.ema_decay", f"must be in [0, 1), got {config.train.ema_decay}")
  _check(config.train.learning_rate > 0, "train.learning_rate", f"must be > 0, got {config.train.learning_rate}")
  _check(
    config.train.log_every >= 1 and config.train.checkpoint_every >= 1,
    "train.log_every",
    "log_every and checkpoint_every must be >= 1",
  )
  f = 2 ** (len(config.model.channel_mult) - 1)
  _check(len(config.model.channel_mult) >= 1, "model.channel_mult", "needs at least one level")
  _check(
    config.data.crop_size % f == 0,
    "data.crop_size",
    f"must be divisible by 2^(len(model.channel_mult) - 1) = {f}, got {config.data.crop_size}",
  )
  _check(config.data.resize > 0, "data.resize", f"must be > 0, got {config.data.resize}")
  _check(0 <= config.data.val_fraction < 1, "data.val_fraction", f"must be in [0, 1), got {config.data.val_fraction}")
  _check(
    config.model.channels % config.model.num_groups == 0,
    "model.num_groups",
    f"must divide model.channels={config.model.channels}",
  )
  _check(config.anomaly.guidance >= 0, "anomaly.guidance", f"must be >= 0, got {config.anomaly.guidance}")
  _check(
    config.anomaly.score in choices.SCORES, "anomaly.score", f"must be one of {choices.SCORES}, got {config.anomaly.score!r}"
  )
  _check(0 <= config.anomaly.feature_t < T, "anomaly.feature_t", f"must be in [0, {T - 1}], got {config.anomaly.feature_t}")
  h = config.head
  _check(
    len(h.inputs) > 0 and all(i in choices.HEAD_INPUTS for i in h.inputs) and len(set(h.inputs)) == len(h.inputs),
    "head.inputs",
    f"must be a non-empty tuple of distinct names from {choices.HEAD_INPUTS}, got {h.inputs}",
  )
  _check(bool(h.name) and "/" not in h.name and h.name not in (".", ".."), "head.name", f"must be a folder name, got {h.name!r}")
  cl = config.classifier
  _check(cl.weight >= 0, "classifier.weight", f"must be >= 0 (0 = off), got {cl.weight}")
  _check(
    bool(cl.name) and "/" not in cl.name and cl.name not in (".", ".."),
    "classifier.name",
    f"must be a folder name, got {cl.name!r}",
  )
  _check(
    cl.input in choices.CLASSIFIER_INPUTS,
    "classifier.input",
    f"must be one of {tuple(choices.CLASSIFIER_INPUTS)}, got {cl.input!r}",
  )
  _check(0 < cl.quantile < 1, "classifier.quantile", f"must be in (0, 1), got {cl.quantile}")
  _check(
    len(cl.channels) >= 1 and all(int(c) >= 1 for c in cl.channels), "classifier.channels",
    f"must be a non-empty tuple of positive ints, got {cl.channels}",
  )  # fmt: skip
  for field in ("members", "rounds", "topk", "num_steps", "batch_size"):
    _check(cl[field] >= 1, f"classifier.{field}", f"must be >= 1, got {cl[field]}")
  _check(cl.batch_size % 2 == 0, "classifier.batch_size", f"must be even (half pseudo-cracks, half sound), got {cl.batch_size}")
  _check(cl.learning_rate > 0, "classifier.learning_rate", f"must be > 0, got {cl.learning_rate}")
  _check(
    h.channels >= 1 and 1 <= h.levels <= 5,
    "head.levels",
    f"need channels >= 1 and levels in [1, 5], got {h.channels}, {h.levels}",
  )
  _check(h.crop_size % 2 ** (h.levels - 1) == 0, "head.crop_size", f"must be divisible by 2^(head.levels - 1), got {h.crop_size}")
  _check(
    h.train_set_size >= 1 and h.batch_size >= 1 and h.num_steps >= 0,
    "head.train_set_size",
    "train_set_size and batch_size must be >= 1",
  )
  for p in ("p_crack", "p_texture", "p_negative", "p_gap"):
    _check(0 <= h[p] <= 1, f"head.{p}", f"must be in [0, 1], got {h[p]}")
  _check(h.p_crack + h.p_texture <= 1, "head.p_texture", f"p_crack + p_texture must be <= 1, got {h.p_crack + h.p_texture}")
  _check(
    len(h.crack_width) == 2 and 0 < h.crack_width[0] <= h.crack_width[1],
    "head.crack_width",
    f"must be (min, max) with 0 < min <= max, got {h.crack_width}",
  )
  _check(h.focal_gamma >= 0, "head.focal_gamma", f"must be >= 0, got {h.focal_gamma}")
  st = config.student
  _check(
    st.architecture in choices.STUDENT_ARCHITECTURES,
    "student.architecture",
    f"must be one of {choices.STUDENT_ARCHITECTURES}, got {st.architecture!r}",
  )
  _check(st.target in choices.STUDENT_TARGETS, "student.target", f"must be one of {choices.STUDENT_TARGETS}, got {st.target!r}")
  _check(
    st.teacher_sampler in ("", *samplers.VARIANTS),
    "student.teacher_sampler",
    f"must be '' or one of {tuple(samplers.VARIANTS)}, got {st.teacher_sampler!r}",
  )
  _check(st.teacher_heal_steps >= 0, "student.teacher_heal_steps", f"must be >= 0, got {st.teacher_heal_steps}")
  _check(1 <= st.stages <= 6, "student.stages", f"must be in [1, 6], got {st.stages}")
  _check(st.channels >= 1, "student.channels", f"must be >= 1, got {st.channels}")
  _check(0 < st.target_quantile < 1, "student.target_quantile", f"must be in (0, 1), got {st.target_quantile}")
  _check(0 <= st.synthetic_cracks <= 1, "student.synthetic_cracks", f"must be in [0, 1], got {st.synthetic_cracks}")
  _check(st.batch_size >= 1 and st.num_steps >= 0, "student.batch_size", "batch_size must be >= 1 and num_steps >= 0")
  _check(st.cache_shard_size >= 1, "student.cache_shard_size", f"must be >= 1, got {st.cache_shard_size}")
  _check(
    st.input_stride in choices.STUDENT_INPUT_STRIDES,
    "student.input_stride",
    f"must be one of {choices.STUDENT_INPUT_STRIDES}, got {st.input_stride}",
  )
  sf = choices.StudentConfig(st.architecture, st.channels, st.stages, st.input_stride).multiple
  _check(
    st.crop_size % sf == 0,
    "student.crop_size",
    f"must be divisible by the student's down-sampling {sf}, got {st.crop_size}",
  )
  _check(
    len(config.sweep.steps) > 0 and all(int(s) >= 1 for s in config.sweep.steps),
    "sweep.steps",
    f"must be step counts >= 1, got {config.sweep.steps}",
  )
  _check(
    len(config.sweep.samplers) > 0 and all(v in samplers.VARIANTS for v in config.sweep.samplers),
    "sweep.samplers",
    f"must be a non-empty tuple of {tuple(samplers.VARIANTS)}, got {config.sweep.samplers}",
  )
  _check(
    config.toy.target in ("", "skeleton", "heatmap"),
    "toy.target",
    f"must be '', 'skeleton' or 'heatmap', got {config.toy.target!r}",
  )
  if config.toy.target:
    _check(
      config.toy.image_size % f == 0,
      "toy.image_size",
      f"must be divisible by 2^(len(model.channel_mult) - 1) = {f}, got {config.toy.image_size}",
    )
    _check(
      min(config.toy.num_train, config.toy.num_samples) >= 1,
      "toy.num_train",
      "num_train and num_samples must be >= 1",
    )
    _check(config.model.kind == "teacher", "model.kind", "the toy job trains a diffusion model; leave model.kind 'teacher'")
  _check(config.eval.batch_size >= 1, "eval.batch_size", f"must be >= 1, got {config.eval.batch_size}")
  _check(config.eval.micro_batch >= 0, "eval.micro_batch", f"must be >= 0 (0 = the whole batch), got {config.eval.micro_batch}")
  _check(
    config.predict.overlays in ("all", "flagged", "none"),
    "predict.overlays",
    f"must be 'all', 'flagged' or 'none', got {config.predict.overlays!r}",
  )
  try:
    thresholds.parse_point(config.predict.operating_point)
  except ValueError as e:
    raise ValueError(str(e)) from None
  _check(config.predict.max_megapixels > 0, "predict.max_megapixels", f"must be > 0, got {config.predict.max_megapixels}")
  _check(
    config.predict.mm_per_pixel >= 0, "predict.mm_per_pixel", f"must be >= 0 (0: pixels only), got {config.predict.mm_per_pixel}"
  )
  m = config.mask
  for f in ("low", "high", "min_length"):
    _check(-float("inf") < m[f] < float("inf"), f"mask.{f}", f"must be a finite number (< 0: calibrated), got {m[f]}")
  if m.low >= 0 and m.high >= 0:
    _check(m.high >= m.low, "mask.high", f"must be >= mask.low ({m.low}), got {m.high}")
  _check(m.calibration_images >= 1, "mask.calibration_images", f"must be >= 1, got {m.calibration_images}")
  _check(
    len(m.crack_width) == 2 and 0 < m.crack_width[0] <= m.crack_width[1], "mask.crack_width",
    f"must be (min, max) with 0 < min <= max, got {tuple(m.crack_width)}",
  )  # fmt: skip
  b = config.baseline
  _check(b.crop_size % 8 == 0, "baseline.crop_size", f"must be divisible by 8, got {b.crop_size}")
  _check(min(b.channels, b.latent_channels, b.memory_size, b.disc_channels) >= 1, "baseline.channels", "sizes must be >= 1")
  _check(b.batch_size >= 1 and b.num_steps >= 0, "baseline.batch_size", "batch_size must be >= 1, num_steps >= 0")
  _check(
    b.vae_sigma > 0 and b.beta >= 0 and b.mc_samples >= 1, "baseline.vae_sigma", "need vae_sigma > 0, beta >= 0, mc_samples >= 1"
  )
  _check(b.vae_map in choices.VAE_MAPS, "baseline.vae_map", f"must be one of {choices.VAE_MAPS}, got {b.vae_map!r}")
  _check(0 <= b.shrink_threshold < 1, "baseline.shrink_threshold", f"must be in [0, 1), got {b.shrink_threshold}")
  _check(0 <= b.draem_p_anomaly <= 1, "baseline.draem_p_anomaly", f"must be in [0, 1], got {b.draem_p_anomaly}")

  _check(
    config.darkness.map in choices.DARKNESS_MAPS,
    "darkness.map",
    f"must be one of {choices.DARKNESS_MAPS}, got {config.darkness.map!r}",
  )
  _check(config.darkness.sigma >= 0, "darkness.sigma", f"must be >= 0 pixels, got {config.darkness.sigma}")
  _check(config.darkness.tophat_size >= 3, "darkness.tophat_size", f"must be >= 3, got {config.darkness.tophat_size}")
  _check(
    config.compute.dtype in ("float32", "bfloat16"),
    "compute.dtype",
    f"must be 'float32' or 'bfloat16', got {config.compute.dtype!r}",
  )
  _check(config.compute.coordinator_timeout > 0, "compute.coordinator_timeout", "must be > 0 seconds")
  e = config.eval
  _check(e.tile_size >= 16, "eval.tile_size", f"must be >= 16, got {e.tile_size}")
  _check(0 <= 2 * e.tile_overlap < e.tile_size, "eval.tile_overlap", f"must be in [0, eval.tile_size / 2), got {e.tile_overlap}")
  _check(e.tile_max_side >= e.tile_size, "eval.tile_max_side", f"must be >= eval.tile_size={e.tile_size}, got {e.tile_max_side}")
  _check(
    0 < config.eval.threshold_percentile <= 100,
    "eval.threshold_percentile",
    f"must be in (0, 100], got {config.eval.threshold_percentile}",
  )
  return config
