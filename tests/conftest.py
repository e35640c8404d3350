"""Four fake CPU devices (set before JAX is imported) so that sharding is exercised; shared fixtures."""

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
