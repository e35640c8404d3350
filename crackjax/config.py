"""Config strings (`configs/x.py:tiny,data=/path,steps=10`) and config invariants.

A config string is a comma-separated list of `key` (a flag) or `key=value`; each key has a type, and unknown keys
fail loudly with the list of known ones. `validate` checks the invariants no single field can (steps <= T, crop
divisible by the UNet's down-sampling, ...) and names the field at fault; `main.py` runs it again after
`--config.x=y` overrides.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections

from crackjax import anomaly, choices, samplers, thresholds
from crackjax.errors import UserError


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
      raise UserError(f"unknown config-string key {key!r} in {arg!r}; known keys: {sorted(fields)}")
    kind = fields[key].type
    if kind == "bool":
      if sep and raw.lower() not in ("true", "false", "1", "0"):
        raise UserError(f"config-string key {key!r} takes true/false, got {raw!r}")
      values[key] = (not sep) or raw.lower() in ("true", "1")
    elif not sep:
      raise UserError(f"config-string key {key!r} needs a value: {key}=...")
    elif kind == "int":
      try:
        values[key] = int(raw)
      except ValueError:
        raise UserError(f"config-string key {key!r} takes an integer, got {raw!r}") from None
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


def teacher_config(config: ml_collections.ConfigDict, teacher_workdir: str) -> ml_collections.ConfigDict:
  """The config a teacher was trained and evaluated with (its config.json), which defines its maps, with the
  student's requests for other healing (student.teacher_sampler, teacher_heal_steps) applied."""
  path = os.path.join(teacher_workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"config.student.teacher_workdir={teacher_workdir!r} has no config.json: not a trained teacher's workdir")
  with open(path) as f:
    saved = json.load(f)
  if saved["data"]["resize"] != config.data.resize:
    raise UserError(
      f"the teacher in {teacher_workdir} works at data.resize={saved['data']['resize']}, the student at "
      f"{config.data.resize}; set --config.data.resize to match"
    )
  tc = config_from_saved(config, saved, sections=("model", "schedule", "sampler", "anomaly", "train"))
  if tc.model.kind == "student":
    raise UserError(f"config.student.teacher_workdir={teacher_workdir!r} holds a student; a student learns from a teacher")
  if tc.model.kind == "teacher":
    # The student may ask the same teacher for maps healed another way (DDPM vs DDIM teachers, same network).
    tc = with_healing(tc, config.student.teacher_sampler, config.student.teacher_heal_steps)
  try:
    validate(tc)
  except ValueError as e:
    raise UserError(f"the teacher in {teacher_workdir} with the student's overrides: {e}") from None
  return tc


# ------------------------------------------------------------------------------------------------ the checks


@dataclasses.dataclass(frozen=True)
class Rule:
  """What one field may hold: one of `values`, or a number in [lo, hi] (an open end where lo_open / hi_open;
  None: unbounded), an integer where `integer`; `what` says it in the message."""

  values: tuple = ()
  lo: float | None = None
  hi: float | None = None
  lo_open: bool = False
  hi_open: bool = False
  integer: bool = False

  def error(self, v) -> str | None:
    if self.values:
      return None if v in self.values else f"must be one of {self.values}, got {v!r}"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or (self.integer and not isinstance(v, int)):
      return f"must be {'an integer' if self.integer else 'a number'}, got {v!r}"
    low_ok = self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)
    high_ok = self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)
    if low_ok and high_ok and abs(v) != float("inf"):
      return None
    lo = "(-inf" if self.lo is None else f"{'(' if self.lo_open else '['}{self.lo:g}"
    hi = "inf)" if self.hi is None else f"{self.hi:g}{')' if self.hi_open else ']'}"
    return f"must be in {lo}, {hi}, got {v!r}"


def one_of(*values) -> Rule:
  return Rule(values=values)


def at_least(lo: float, *, integer: bool = False) -> Rule:
  return Rule(lo=lo, integer=integer)


def above(lo: float) -> Rule:
  return Rule(lo=lo, lo_open=True)


def fraction(*, lo_open: bool = False, hi_open: bool = False) -> Rule:
  return Rule(lo=0.0, hi=1.0, lo_open=lo_open, hi_open=hi_open)


# Every field with a range or a set of values, in one place (configs/base.py gives their meaning). Names are also
# checked: a folder name in the workdir may not leave it (NAME_FIELDS).
RULES: dict[str, Rule] = {
  "model.kind": one_of(*choices.KINDS),
  "model.channels": at_least(1, integer=True),
  "model.num_res_blocks": at_least(1, integer=True),
  "schedule.kind": one_of("linear", "cosine"),
  "schedule.num_timesteps": at_least(2, integer=True),
  "schedule.beta_start": fraction(lo_open=True, hi_open=True),
  "schedule.beta_end": fraction(lo_open=True, hi_open=True),
  "sampler.kind": one_of(*samplers.SAMPLERS),
  "sampler.num_steps": at_least(1, integer=True),
  "sampler.eta": at_least(0),
  "train.num_steps": at_least(0, integer=True),
  "train.batch_size": at_least(1, integer=True),
  "train.learning_rate": above(0),
  "train.warmup_steps": at_least(0, integer=True),
  "train.ema_decay": fraction(hi_open=True),
  "train.t_min": at_least(0, integer=True),
  "train.log_every": at_least(1, integer=True),
  "train.checkpoint_every": at_least(1, integer=True),
  "train.patience": at_least(0, integer=True),
  "data.resize": above(0),
  "data.crop_size": at_least(1, integer=True),
  "data.val_fraction": fraction(hi_open=True),
  "data.stream_workers": at_least(0, integer=True),
  "anomaly.t_start": at_least(0, integer=True),
  "anomaly.heal_steps": at_least(0, integer=True),
  "anomaly.num_draws": at_least(1, integer=True),
  "anomaly.average": one_of(*anomaly.AVERAGES),
  "anomaly.channels": one_of(*anomaly.CHANNELS),
  "anomaly.pooling": one_of(*anomaly.POOLINGS),
  "anomaly.topk_fraction": fraction(lo_open=True),
  "anomaly.mad_floor": above(0),
  "anomaly.border": at_least(0, integer=True),
  "anomaly.smoothing_sigma": at_least(0),
  "anomaly.line_sigma": at_least(0),
  "anomaly.pyramid": Rule(lo=1, hi=4, integer=True),
  "anomaly.darkness": at_least(0),
  "anomaly.localization_darkness": at_least(0),
  "anomaly.localization_zscore": at_least(0),
  "anomaly.localization_background": at_least(0),
  "anomaly.localization_sigma": at_least(0),
  "eval.batch_size": at_least(1, integer=True),
  "eval.micro_batch": at_least(0, integer=True),
  "eval.max_images": at_least(0, integer=True),
  "eval.threshold_percentile": Rule(lo=0, hi=100, lo_open=True),
  "eval.num_examples": at_least(0, integer=True),
  "eval.tile_size": at_least(16, integer=True),
  "eval.tile_overlap": at_least(0, integer=True),
  "student.architecture": one_of(*choices.STUDENT_ARCHITECTURES),
  "student.target": one_of(*choices.STUDENT_TARGETS),
  "student.teacher_sampler": one_of("", *samplers.VARIANTS),
  "student.teacher_heal_steps": at_least(0, integer=True),
  "student.stages": Rule(lo=1, hi=6, integer=True),
  "student.channels": at_least(1, integer=True),
  "student.input_stride": one_of(*choices.STUDENT_INPUT_STRIDES),
  "student.synthetic_cracks": fraction(),
  "student.max_pool_images": at_least(0, integer=True),
  "student.cache_shard_size": at_least(1, integer=True),
  "student.num_steps": at_least(0, integer=True),
  "student.batch_size": at_least(1, integer=True),
  "student.learning_rate": above(0),
  "baseline.channels": at_least(1, integer=True),
  "baseline.latent_channels": at_least(1, integer=True),
  "baseline.memory_size": at_least(1, integer=True),
  "baseline.disc_channels": at_least(1, integer=True),
  "baseline.num_steps": at_least(0, integer=True),
  "baseline.batch_size": at_least(1, integer=True),
  "baseline.learning_rate": above(0),
  "baseline.beta": at_least(0),
  "baseline.vae_sigma": above(0),
  "baseline.mc_samples": at_least(1, integer=True),
  "baseline.shrink_threshold": fraction(hi_open=True),
  "baseline.draem_p_anomaly": fraction(),
  "baseline.focal_gamma": at_least(0),
  "darkness.map": one_of(*choices.DARKNESS_MAPS),
  "darkness.sigma": at_least(0),
  "darkness.tophat_size": at_least(3, integer=True),
  "toy.target": one_of("skeleton", "heatmap"),
  "toy.num_train": at_least(1, integer=True),
  "compute.dtype": one_of("float32", "bfloat16"),
  "compute.coordinator_timeout": above(0),
  "predict.overlays": one_of("all", "flagged", "none"),
  "predict.max_megapixels": above(0),
  "predict.mm_per_pixel": at_least(0),
  "mask.calibration_images": at_least(1, integer=True),
  "mask.low": Rule(),  # any finite number (< 0: calibrated)
  "mask.high": Rule(),
  "mask.min_length": Rule(),
  "sweep.max_images": at_least(0, integer=True),
}
NAME_FIELDS = ("eval.name", "predict.name", "sweep.name")  # folders under the workdir: a name, not a path


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _check(cond: bool, field: str, msg: str) -> None:
  if not cond:
    raise UserError(f"config.{field}: {msg}")


def _invariants(c: ml_collections.ConfigDict) -> None:
  """What no single field's rule can say: fields that constrain each other."""
  T, a, t = c.schedule.num_timesteps, c.anomaly, c.train
  _check(c.schedule.beta_start < c.schedule.beta_end, "schedule.beta_start", "must be < schedule.beta_end")
  _check(c.sampler.num_steps <= T, "sampler.num_steps", f"must be <= schedule.num_timesteps={T}, got {c.sampler.num_steps}")
  _check(a.t_start < T, "anomaly.t_start", f"must be in [0, {T - 1}], got {a.t_start}")
  _check(t.t_min <= t.t_max < T, "train.t_max", f"need 0 <= t_min <= t_max < {T}, got [{t.t_min}, {t.t_max}]")
  _check(
    t.t_min <= a.t_start <= t.t_max, "anomaly.t_start",
    f"healing starts at t={a.t_start}, outside the trained range [train.t_min, train.t_max] = [{t.t_min}, {t.t_max}]",
  )  # fmt: skip
  _check(
    a.heal_steps <= a.t_start + 1, "anomaly.heal_steps",
    f"must be in [0, anomaly.t_start + 1] (0 = the sampler's share), got {a.heal_steps}",
  )  # fmt: skip
  _check(
    not a.antithetic or a.num_draws % 2 == 0,
    "anomaly.antithetic",
    f"pairs the draws: anomaly.num_draws must be even, got {a.num_draws}",
  )
  _check(
    a.line_sigma == 0 or a.smoothing_sigma > 0,
    "anomaly.smoothing_sigma",
    "must be > 0 (the line filter's width) when anomaly.line_sigma > 0",
  )
  _check(
    len(c.model.channel_mult) >= 1 and all(int(m) >= 1 for m in c.model.channel_mult),
    "model.channel_mult",
    "needs positive multipliers, one per level",
  )
  f = 2 ** (len(c.model.channel_mult) - 1)
  _check(
    c.data.crop_size % f == 0,
    "data.crop_size",
    f"must be divisible by 2^(len(model.channel_mult) - 1) = {f}, got {c.data.crop_size}",
  )
  _check(c.model.channels % c.model.num_groups == 0, "model.num_groups", f"must divide model.channels={c.model.channels}")
  st = c.student
  sf = choices.StudentConfig(st.architecture, st.channels, st.stages, st.input_stride).multiple
  _check(
    st.crop_size % sf == 0, "student.crop_size", f"must be divisible by the student's down-sampling {sf}, got {st.crop_size}"
  )
  _check(c.baseline.crop_size % 8 == 0, "baseline.crop_size", f"must be divisible by 8, got {c.baseline.crop_size}")
  _check(
    len(c.sweep.steps) > 0 and all(int(s) >= 1 for s in c.sweep.steps),
    "sweep.steps",
    f"must be step counts >= 1, got {c.sweep.steps}",
  )
  _check(
    len(c.sweep.samplers) > 0 and all(v in samplers.VARIANTS for v in c.sweep.samplers), "sweep.samplers",
    f"must be a non-empty tuple of {tuple(samplers.VARIANTS)}, got {c.sweep.samplers}",
  )  # fmt: skip
  _check(c.toy.image_size % f == 0, "toy.image_size", f"must be divisible by 2^(len(model.channel_mult) - 1) = {f}")
  e, m = c.eval, c.mask
  _check(2 * e.tile_overlap < e.tile_size, "eval.tile_overlap", f"must be in [0, eval.tile_size / 2), got {e.tile_overlap}")
  _check(e.tile_max_side >= e.tile_size, "eval.tile_max_side", f"must be >= eval.tile_size={e.tile_size}, got {e.tile_max_side}")
  if m.low >= 0 and m.high >= 0:
    _check(m.high >= m.low, "mask.high", f"must be >= mask.low ({m.low}), got {m.high}")
  _check(
    bool(c.train.init_from) <= (c.model.kind == "teacher"),
    "train.init_from",
    "fine-tunes a diffusion teacher; model.kind is not 'teacher'",
  )
  thresholds.parse_point(c.predict.operating_point)


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Raises ValueError naming the first field whose value breaks its RULES entry or an invariant; returns config."""
  for field, rule in RULES.items():
    msg = rule.error(_get(config, field))
    if msg:
      raise UserError(f"config.{field}: {msg}")
  for field in NAME_FIELDS:
    v = _get(config, field)
    _check(
      v == "" or ("/" not in v and "\\" not in v and v not in (".", "..")), field, f"must be a folder name (no path), got {v!r}"
    )
  _invariants(config)
  return config
