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
    ("schedule.kind", "sigmoid", "schedule.kind"),
    ("train.ema_decay", 1.0, r"train.ema_decay: must be in \[0, 1\)"),
    ("train.warmup_steps", -1, r"train.warmup_steps: must be in \[0, inf\)"),
    ("train.batch_size", True, "train.batch_size: must be an integer"),
    ("train.init_from", "runs/x", "train.init_from"),  # on a student config below; a teacher's takes any path
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
    ("mask.low", float("nan"), "mask.low"),
    ("mask.calibration_images", 0, "mask.calibration_images"),
    ("mask.min_length", float("inf"), "mask.min_length"),
    ("eval.name", "../elsewhere", "eval.name: must be a folder name"),
    ("predict.name", "/tmp/out", "predict.name: must be a folder name"),
    ("sweep.name", "..", "sweep.name: must be a folder name"),
    ("predict.mm_per_pixel", -0.1, "predict.mm_per_pixel"),
    ("anomaly.mad_floor", 0.0, "anomaly.mad_floor"),
    ("anomaly.mad_floor", float("nan"), "anomaly.mad_floor"),
    ("anomaly.border", -1, "anomaly.border"),
    ("eval.micro_batch", -2, "eval.micro_batch"),
    ("student.input_stride", 3, "student.input_stride"),
  ],
)
def test_wrong_values_name_the_field(field, value, match):
  from configs import ddim_50, student_coarse_to_fine

  config = (student_coarse_to_fine if field == "train.init_from" else ddim_50).get_config()
  section, name = field.split(".")
  with config.unlocked():
    setattr(config[section], name, value)
  with pytest.raises(ValueError, match=match):
    validate(config)


def test_the_mask_thresholds_must_be_ordered():
  from configs import ddim_50

  config = ddim_50.get_config()
  with config.unlocked():
    config.mask.update(low=0.5, high=0.4)
  with pytest.raises(ValueError, match="mask.high.*>= mask.low"):
    validate(config)
