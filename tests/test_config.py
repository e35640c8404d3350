import glob
import importlib
import os

import pytest

from crackjax.config import parse_config_string, validate

CONFIGS = sorted(
  os.path.splitext(os.path.basename(p))[0]
  for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.py"))
  if not p.endswith("__init__.py")
)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", [None, "tiny", "tiny,data=/some/root"])
def test_every_config_loads(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  validate(config)
  if arg and "data=" in arg:
    assert config.data.root == "/some/root"
  with pytest.raises(AttributeError):
    config.trian = 1  # locked: a misspelt field fails loudly


def test_the_darkness_floor_keeps_the_whole_map_where_the_real_data_score_leaves_its_frame_out():
  from configs import darkness, ddim_50

  assert ddim_50.get_config("data=/some/root").anomaly.border == 4
  assert darkness.get_config("data=/some/root").anomaly.border == 0  # the floor as docs/baselines.md measured it


def test_config_string_is_typed_and_rejects_unknown_keys():
  assert parse_config_string("tiny,data=/x,steps=10") == parse_config_string(" steps=10 , data=/x, tiny")
  assert parse_config_string("steps=10").steps == 10
  with pytest.raises(ValueError, match="unknown config-string key 'tine'"):
    parse_config_string("tine")
  with pytest.raises(ValueError, match="takes an integer"):
    parse_config_string("steps=ten")
  with pytest.raises(ValueError, match="needs a value"):
    parse_config_string("data")


def test_the_large_variant_is_the_real_data_default_at_full_resolution_with_a_larger_unet():
  """`:large` changes the data's scale and the UNet, not the score; the localization map is the real-data one."""
  from configs import ddim_50

  base, large = ddim_50.get_config("data=/some/root"), ddim_50.get_config("data=/some/root,large")
  assert (large.data.resize, large.data.crop_size, large.model.channels, large.model.channel_mult) == (1.0, 64, 64, (1, 2, 2, 2))
  assert large.anomaly.to_dict() == base.anomaly.to_dict() and large.anomaly.localization_darkness == 1.5
  assert (large.anomaly.localization_zscore, large.anomaly.localization_background) == (0.05, 64.0)
  assert (large.anomaly.localization_sigma, large.darkness.sigma) == (0.75, 1.0)  # the image score's darkness keeps 1
  assert ddim_50.get_config("large").anomaly.localization_darkness == 0.0  # synthetic data: the image map localizes
  assert ddim_50.get_config("data=/some/root,large,tiny").model.channels == 8  # tiny still shrinks it for tests


def test_antithetic_draws_need_an_even_number_of_draws():
  from configs import ddim_50

  config = ddim_50.get_config("data=/some/root")
  with config.unlocked():
    config.anomaly.num_draws = 3
  with pytest.raises(ValueError, match="anomaly.antithetic.*even"):
    validate(config)
  with config.unlocked():
    config.anomaly.num_draws = 2
  validate(config)


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("sampler.num_steps", 5000, "sampler.num_steps"),
    ("sampler.kind", "euler", "sampler.kind"),
    ("anomaly.t_start", 1000, "anomaly.t_start"),
    ("anomaly.pooling", "mean", "anomaly.pooling"),
    ("anomaly.heal_steps", 500, "anomaly.heal_steps"),
    ("data.crop_size", 30, "data.crop_size"),
    ("train.t_max", 20, "anomaly.t_start"),
    ("model.num_groups", 7, "model.num_groups"),
    ("anomaly.pyramid", 0, "anomaly.pyramid"),
    ("classifier.input", "maps", "classifier.input"),
    ("anomaly.darkness", -0.5, "anomaly.darkness"),
    ("anomaly.darkness", float("nan"), "anomaly.darkness"),
    ("anomaly.localization_darkness", -1.0, "anomaly.localization_darkness"),
    ("anomaly.localization_darkness", float("inf"), "anomaly.localization_darkness"),
    ("anomaly.localization_zscore", -0.1, "anomaly.localization_zscore"),
    ("anomaly.localization_zscore", float("nan"), "anomaly.localization_zscore"),
    ("anomaly.localization_background", -1.0, "anomaly.localization_background"),
    ("anomaly.localization_background", float("inf"), "anomaly.localization_background"),
    ("anomaly.localization_sigma", -0.5, "anomaly.localization_sigma"),
    ("anomaly.localization_sigma", float("nan"), "anomaly.localization_sigma"),
    ("darkness.sigma", -1.0, "darkness.sigma"),
    ("anomaly.average", "median", "anomaly.average"),
    ("anomaly.views", 0, "anomaly.views"),
    ("anomaly.line_power", 0.0, "anomaly.line_power"),
    ("anomaly.line_power", float("nan"), "anomaly.line_power"),
    ("anomaly.views", 3, "anomaly.views.*num_draws=2"),  # 2 draws cannot be split over 3 views
    ("anomaly.mad_floor", 0.0, "anomaly.mad_floor"),
    ("anomaly.mad_floor", float("nan"), "anomaly.mad_floor"),
    ("anomaly.border", -1, "anomaly.border"),
    ("eval.micro_batch", -2, "eval.micro_batch"),
    ("student.input_stride", 3, "student.input_stride"),
  ],
)
def test_wrong_values_name_the_field(field, value, match):
  from configs import ddim_50

  config = ddim_50.get_config()
  section, name = field.split(".")
  with config.unlocked():
    setattr(config[section], name, value)
  with pytest.raises(ValueError, match=match):
    validate(config)


def test_a_partner_needs_a_second_draw_of_the_residual_score():
  """anomaly.partner heals every second draw of the residual: one draw, or a head score, is refused by name."""
  from configs import ddim_50

  for field, value, match in (("num_draws", 1, "num_draws=1"), ("score", "head", "score='head'")):
    config = ddim_50.get_config()
    with config.unlocked():
      config.anomaly.partner = "runs/other"
      config.anomaly[field] = value
    with pytest.raises(ValueError, match="anomaly.partner.*" + match):
      validate(config)


def test_the_teacher_heals_with_the_configs_darkness_line():
  """anomaly.darkness_line reaches the healing's config (off by default, also in the real-data defaults)."""
  from configs import ddim_50
  from crackjax import teacher

  c = ddim_50.get_config("data=/some/root")
  assert teacher.heal_config(c).darkness_line is False
  with c.unlocked():
    c.anomaly.darkness_line = True
  assert teacher.heal_config(c).darkness_line is True


def test_the_teacher_heals_with_the_configs_views():
  """anomaly.views and anomaly.line_power reach the healing's config and the scorer's info (1 by default, also with :data=); with
  antithetic pairs it must divide the number of pairs."""
  from configs import ddim_50
  from crackjax import teacher

  c = ddim_50.get_config("data=/some/root")
  assert teacher.heal_config(c).views == 1
  assert teacher.heal_config(c).line_power == 1.0
  with c.unlocked():
    c.anomaly.line_power = 0.5
  assert teacher.heal_config(c).line_power == 0.5
  with c.unlocked():
    c.anomaly.views = 2
  with pytest.raises(ValueError, match="anomaly.views.*pairs"):  # one antithetic pair cannot be split over 2 views
    validate(c)
  with c.unlocked():
    c.anomaly.num_draws = 4
  validate(c)
  assert teacher.heal_config(c).views == 2
