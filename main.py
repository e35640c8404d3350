"""crackjax's one entry point: flags, logging, dispatch. Everything else is a config field.

python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50                 # train if needed, evaluate
python main.py --config=configs/ddim_50.py:data=/path/root --workdir=runs/real      # a real MVTec-layout folder
python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50 --mode=evaluate --config.eval.root=/other
python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50 --mode=predict --config.predict.input=/imgs
python main.py --config=configs/ddim_50.py --workdir=runs/bench --mode=benchmark                  # speed only
python main.py --config=configs/sweep_steps.py --workdir=runs/ddim_50 --mode=sweep         # samplers x steps
python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50 --mode=failures          # failure galleries
"""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Config file, e.g. configs/ddim_50.py or configs/ddim_50.py:tiny", lock_config=True
)
flags.DEFINE_string("workdir", None, "Where the run writes and resumes from.")
flags.DEFINE_enum(
  "mode",
  "train_and_evaluate",
  ["train_and_evaluate", "train", "evaluate", "predict", "benchmark", "sweep", "failures"],
  "What to do (benchmark: speed of the configured model on this machine; sweep: samplers x steps of a trained "
  "teacher; failures: galleries and rates of failure kinds of an evaluated model).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import jax
  from absl import logging as absl_logging

  from crackjax import jobs
  from crackjax.config import validate

  absl_logging.set_verbosity(absl_logging.WARNING)  # third-party INFO (orbax, TFDS) is noise here
  logging.getLogger("crackjax").setLevel(logging.INFO)
  jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "crackjax", "xla"))
  config = FLAGS.config
  try:
    validate(config)
  except ValueError as e:
    sys.exit(f"error: {e}")
  os.makedirs(FLAGS.workdir, exist_ok=True)
  logging.info("JAX devices: %s", jax.devices())
  job = {
    "train_and_evaluate": jobs.train_and_evaluate,
    "train": jobs.train_only,
    "evaluate": jobs.evaluate,
    "predict": jobs.predict,
    "benchmark": jobs.benchmark,
    "sweep": jobs.sweep,
    "failures": jobs.failures,
  }
  try:
    job[FLAGS.mode](config, FLAGS.workdir)
  except (FileNotFoundError, ValueError, FloatingPointError) as e:
    logging.error("%s", e)
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
