"""Several hosts, simulated: two processes over loopback, each with two fake CPU devices, against one process with
four. The same global batch and keys give the same parameters; a killed two-process run resumes; a process that
cannot reach its coordinator stops with a clear message in bounded time."""

import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from crackjax import jobs
from crackjax import train as train_lib
from tests.conftest import FAST_COMPILE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config=configs/ddim_50.py:tiny", "--mode=train", "--config.train.num_steps=4", "--config.train.checkpoint_every=2"]


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _two_processes(workdir: str, timeout: int = 600) -> list[subprocess.CompletedProcess]:
  port = _port()
  procs = []
  for pid in range(2):
    env = {
      **os.environ,
      "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {FAST_COMPILE}",
      "JAX_PLATFORMS": "cpu",
      "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
      "JAX_NUM_PROCESSES": "2",
      "JAX_PROCESS_ID": str(pid),
    }
    cmd = [sys.executable, "main.py", *ARGS, f"--workdir={workdir}"]
    procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  out = []
  for p in procs:
    stdout, stderr = p.communicate(timeout=timeout)
    out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
  return out


def _params(config, workdir):
  state = train_lib.load_trained(config, workdir)
  return [np.asarray(x) for x in jax.tree.leaves((state.params, state.ema_params, state.opt_state))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  from configs import ddim_50

  config = ddim_50.get_config("tiny")
  with config.unlocked():
    config.train.num_steps, config.train.checkpoint_every = 4, 2
  one = str(tmp_path_factory.mktemp("one_process"))
  jobs.train_only(config, one)  # this test process: 4 fake devices
  two = str(tmp_path_factory.mktemp("two_processes"))
  results = _two_processes(two)
  return config, one, two, results


def test_two_processes_give_the_parameters_of_one_with_the_same_global_devices(runs):
  config, one, two, results = runs
  for r in results:
    assert r.returncode == 0, r.stderr[-2000:]
  assert "process 1 of 2, 2 local / 4 global devices" in results[1].stderr
  for a, b in zip(_params(config, one), _params(config, two)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 all-reduce order differs (gloo vs in-process)
  # Only process 0 wrote the run's record.
  assert os.path.exists(os.path.join(two, "config.json")) and os.path.exists(os.path.join(two, "train_info.json"))


def test_a_killed_two_process_run_resumes(runs, tmp_path):
  config, one, two, _ = runs
  w = str(tmp_path / "killed")
  shutil.copytree(two, w)
  shutil.rmtree(os.path.join(w, "checkpoints", "4"))  # killed after the step-2 checkpoint
  for r in _two_processes(w):
    assert r.returncode == 0, r.stderr[-2000:]
  for a, b in zip(_params(config, one), _params(config, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 all-reduce order differs (gloo vs in-process)


def test_an_unreachable_coordinator_is_a_clear_error_in_bounded_time(tmp_path):
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {FAST_COMPILE}", "JAX_PLATFORMS": "cpu",
         "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{_port()}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}  # fmt: skip
  cmd = [sys.executable, "main.py", *ARGS, f"--workdir={tmp_path}", "--config.compute.coordinator_timeout=5"]
  r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
  assert r.returncode != 0 and len(lines) == 1, r.stderr[-1500:]
  assert "could not join the coordinator at 127.0.0.1" in lines[0] and "within 5 s" in lines[0]
