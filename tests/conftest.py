"""Four fake CPU devices (set before JAX is imported) so that sharding is exercised; shared fixtures."""

import os

# XLA's backend optimisation off for the tests (and their subprocesses): the suite's time is mostly compiling tiny
# functions, and at level 0 that is several times faster (a baseline's parameter init: 10 s -> 1.2 s on the
# development machine); what XLA computes is the same, only slower to run, which tiny inputs do not feel.
FAST_COMPILE = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count=4 {FAST_COMPILE}"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the test run, shared with the subprocesses (main.py, the notebook's kernel,
# the distributed processes): the same tiny functions are compiled by many tests. A fresh folder per test run, so
# no test depends on what an earlier test run left behind.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile

  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="crackjax-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)


@pytest.fixture(scope="session")
def tiny_config():
  from configs import ddim_50

  return ddim_50.get_config("tiny")


@pytest.fixture(scope="module")
def darkness_run(tmp_path_factory):
  """The no-learning kind (deterministic, nothing to train) trained and evaluated on a root whose val and test
  disagree about the best threshold: val cracks are faint, test cracks dark. (config, workdir, metrics)"""
  import numpy as np

  from configs import darkness
  from crackjax import jobs
  from crackjax.data import synthetic
  from tests.test_data import _png

  root = tmp_path_factory.mktemp("dark") / "root"
  for i in range(6):
    _png(f"{root}/train/good/{i}.png", synthetic.generate(0, i, 32, crack=False, distractor_prob=0)[0])
  for split, n, depth in (("val", 6, 0.8), ("test", 8, 0.3)):
    for i in range(n):
      good = synthetic.generate(0, 100 * len(split) + i, 32, crack=False, distractor_prob=0)[0]
      _png(f"{root}/{split}/good/g{i}.png", good)
      crack = good.copy()
      crack[10 + i, 4:28] = (crack[10 + i, 4:28] * depth).astype(np.uint8)
      _png(f"{root}/{split}/crack/c{i}.png", crack)
  config = darkness.get_config(f"data={root}")
  with config.unlocked():
    config.anomaly.topk_fraction = 0.02
  workdir = str(tmp_path_factory.mktemp("dark_run"))
  return config, workdir, jobs.train_and_evaluate(config, workdir)
