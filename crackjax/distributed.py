"""Several hosts: `jax.distributed.initialize()` and what changes with more than one process.

Started when config.compute.distributed is set or the usual variables are: JAX_COORDINATOR_ADDRESS (host:port of
process 0), JAX_NUM_PROCESSES, JAX_PROCESS_ID. Then
- the mesh spans every process's devices (train.make_mesh uses jax.devices()), the state is replicated and the
  global batch is split over Mesh('data'): each process builds only its own rows of each global batch
  (`local_rows`), and `global_batch` assembles the global array from the processes' parts;
- orbax checkpoints from every process (it coordinates them); only process 0 writes config.json, metrics, plots,
  predictions and TensorBoard logs (`is_writer`);
- data sets are prepared by process 0 while the others wait (`prepare_once`).
On CPUs the collectives go through gloo (loopback tests). A process that cannot reach the coordinator within
config.compute.coordinator_timeout seconds stops with a message naming the address.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from crackjax.errors import UserError

log = logging.getLogger(__name__)

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def requested(config) -> bool:
  return bool(config.compute.distributed or os.environ.get("JAX_COORDINATOR_ADDRESS"))


def initialize(config) -> None:
  """jax.distributed.initialize() from config.compute and the environment; a clear error when it cannot."""
  if not requested(config):
    return
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  n = os.environ.get("JAX_NUM_PROCESSES")
  pid = os.environ.get("JAX_PROCESS_ID")
  if address and (n is None or pid is None):
    raise UserError("JAX_COORDINATOR_ADDRESS is set: set JAX_NUM_PROCESSES and JAX_PROCESS_ID as well")
  if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if address and pid is not None and int(pid) != 0:
    # JAX's client aborts the whole process (a C++ check, no Python exception) when the coordinator never answers:
    # wait for its port here first, so that this failure is a message.
    wait_for(address, config.compute.coordinator_timeout, pid)
  try:
    jax.distributed.initialize(
      coordinator_address=address,
      num_processes=None if n is None else int(n),
      process_id=None if pid is None else int(pid),
      initialization_timeout=int(config.compute.coordinator_timeout),
    )
  except Exception as e:  # noqa: BLE001  (jax raises several kinds; all mean the same to the user)
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    raise UserError(
      f"process {pid} could not join the coordinator at {address or 'the detected cluster'} within "
      f"{config.compute.coordinator_timeout} s (config.compute.coordinator_timeout): {first}"
    ) from None
  log.info("process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
           jax.local_device_count(), jax.device_count())  # fmt: skip


def wait_for(address: str, timeout: float, pid) -> None:
  host, _, port = address.rpartition(":")
  deadline = time.time() + timeout
  while True:
    try:
      with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
        return
    except OSError as e:
      if time.time() >= deadline:
        raise UserError(
          f"process {pid} could not join the coordinator at {address} within {timeout:g} s "
          f"(config.compute.coordinator_timeout): {e.strerror or e}"
        ) from None
      time.sleep(0.5)


def is_writer() -> bool:
  return jax.process_index() == 0


def local_rows(batch_size: int) -> tuple[int, int]:
  """This process's rows [lo, hi) of a global batch (each process feeds its own devices)."""
  n, i = jax.process_count(), jax.process_index()
  if batch_size % n:
    raise UserError(f"the global batch {batch_size} does not divide by the {n} processes")
  per = batch_size // n
  return i * per, (i + 1) * per


def global_batch(local, sharding):
  """The global array of a batch from this process's rows (a pytree of arrays); a device_put on one process."""
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)
  return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local)


def prepare_once(fn):
  """fn() on process 0 first (it may write a prepared data set), then on the others."""
  if jax.process_count() == 1:
    return fn()
  if is_writer():
    out = fn()
    multihost_utils.sync_global_devices("crackjax: data prepared")
    return out
  multihost_utils.sync_global_devices("crackjax: data prepared")
  return fn()
