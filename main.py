"""crackjax's one entry point: flags, logging, dispatch. Everything else is a config field.

python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50                 # train if needed, evaluate
python main.py --config=configs/ddim_50.py:data=/path/root --workdir=runs/real      # a real MVTec-layout folder
python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50 --mode=evaluate --config.eval.root=/other
python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50 --mode=predict --config.predict.input=/imgs
python main.py --config=configs/ddim_50.py --workdir=runs/bench --mode=benchmark                  # speed only
python main.py --config=configs/sweep_steps.py --workdir=runs/ddim_50 --mode=sweep         # samplers x steps
python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50 --mode=failures          # failure galleries
"""

import contextlib
import logging
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def fail(message: str) -> None:
  """One line on stderr and exit status 2: what the user got wrong (a config value, a folder, a busy workdir)."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def cpu_devices(environ=os.environ, cores: int | None = None) -> int:
  """One XLA host device per core (the largest power of two <= the cores, at most 8), set before jax starts: the
  sharded training step then runs its shards on the cores side by side, where one device keeps about 1.3 of 2
  cores busy (docs/benchmark.md: 1.80 -> 3.20 steps/s on 2 cores). Left alone where XLA_FLAGS already sets a
  count, and off with CRACKJAX_CPU_DEVICES=1 (or set to another count). Only the CPU platform is affected."""
  flags_now = environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" in flags_now:
    return 0
  try:
    n = int(environ.get("CRACKJAX_CPU_DEVICES", "0"))
  except ValueError:
    fail(f"CRACKJAX_CPU_DEVICES={environ['CRACKJAX_CPU_DEVICES']!r} is not a whole number of devices")
  if n <= 0:
    cores = cores or os.cpu_count() or 1
    n = 1
    while n * 2 <= min(cores, 8):
      n *= 2
  if n > 1:
    environ["XLA_FLAGS"] = f"{flags_now} --xla_force_host_platform_device_count={n}".strip()
  return n


cpu_devices()

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
  ["train_and_evaluate", "train", "evaluate", "predict", "export", "benchmark", "sweep", "failures", "toy"],
  "What to do (benchmark: speed of the configured model on this machine; sweep: samplers x steps of a trained "
  "teacher; failures: galleries and rates of failure kinds of an evaluated model; toy: the memorization DDPM).",
)
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl's parsing, with a misspelt `--config.x.y` override reported in one line (ml_collections raises an
  AttributeError deep in flag parsing, 53 lines of traceback, that ends in a good suggestion)."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:
    msg = str(e)
    names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", msg)
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    arg, bad = next(((a, p) for a in overrides for p in a.split(".")[1:] if p in names), ("", ""))
    hint = re.search(r'Did you mean \W*"?([A-Za-z0-9_]+)', msg)
    if hint and arg:
      fail(f"{arg}: no such config field; did you mean {arg.replace('.' + bad, '.' + hint.group(1), 1)}?")
    fail(f"{arg or 'a --config override'}: no such config field ({' '.join(msg.split())[:200]})")
  except flags.Error as e:
    fail(str(e))


def check_workdir(workdir: str) -> None:
  """A workdir that is a file, or lies under one, is a one-line error, not a FileExistsError traceback."""
  path = os.path.abspath(workdir)
  while path and path != os.path.dirname(path):
    if os.path.exists(path) and not os.path.isdir(path):
      fail(f"--workdir={workdir}: {path} is a file, not a folder")
    path = os.path.dirname(path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import jax
  from absl import logging as absl_logging

  from crackjax import files, jobs
  from crackjax.config import validate
  from crackjax.errors import UserError

  absl_logging.set_verbosity(absl_logging.WARNING)  # third-party INFO (orbax, TFDS) is noise here
  logging.getLogger("crackjax").setLevel(logging.INFO)
  if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # compiled functions are reused across runs
    jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.expanduser("~"), ".cache", "crackjax", "xla"))
  config = FLAGS.config
  try:
    validate(config)
  except UserError as e:
    fail(str(e))
  check_workdir(FLAGS.workdir)
  os.makedirs(FLAGS.workdir, exist_ok=True)
  from crackjax import distributed

  try:
    distributed.initialize(config)
  except (RuntimeError, UserError) as e:  # the coordinator is not there: the environment, not the program
    fail(str(e))
  logging.info("JAX devices: %s", jax.devices())
  job = {
    "train_and_evaluate": jobs.train_and_evaluate,
    "train": jobs.train_only,
    "evaluate": jobs.evaluate,
    "predict": jobs.predict,
    "export": jobs.export,
    "benchmark": jobs.benchmark,
    "sweep": jobs.sweep,
    "failures": jobs.failures,
    "toy": jobs.toy,
  }

  def locked_job():
    with contextlib.ExitStack() as held:
      if distributed.is_writer():  # one run per folder (the processes of one multi-host run are one run)
        for folder, shared in jobs.held_folders(FLAGS.mode, config, FLAGS.workdir):
          held.enter_context(files.Lock(folder, shared=shared))
      job[FLAGS.mode](config, FLAGS.workdir)

  run(locked_job)


def run(fn) -> None:
  """fn(), with what the user can fix (a UserError) and what the machine refused (an OSError: a full disk, an
  unwritable folder, named with its path and errno) as one line and exit status 2; any other exception is the
  program's fault and keeps its traceback."""
  from crackjax import files
  from crackjax.errors import UserError

  try:
    fn()
  except UserError as e:
    fail(str(e))
  except OSError as e:
    fail(files.describe(e))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
