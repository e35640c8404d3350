import json
import os
import shutil

import jax
import numpy as np
import pytest

from crackjax import train as train_lib
from crackjax.data import synthetic
from crackjax.errors import UserError


def _images(n=6, size=32):
  return [synthetic.generate(0, i, size, crack=False)[0] for i in range(n)]


def _config(tiny_config, **train):
  c = tiny_config.copy_and_resolve_references()
  with c.unlocked():
    c.train.update(train)
  return c


def test_train_runs_sharded_on_four_devices_and_checkpoints(tmp_path, tiny_config):
  assert jax.device_count() == 4
  init = train_lib.create_train_state(tiny_config, jax.random.split(jax.random.PRNGKey(tiny_config.seed))[0])
  state = train_lib.train(tiny_config, str(tmp_path), _images())
  assert int(state.step) == tiny_config.train.num_steps
  leaf = jax.tree.leaves(state.params)[0]
  assert len(leaf.sharding.device_set) == 4  # replicated over the mesh
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), init.params, state.params)
  assert max(jax.tree.leaves(moved)) > 0
  # EMA lags the params but has moved too.
  ema_gap = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), state.ema_params, state.params)
  assert max(jax.tree.leaves(ema_gap)) > 0
  assert train_lib.checkpoint_manager(str(tmp_path), tiny_config).latest_step() == tiny_config.train.num_steps


def test_killed_run_resumes_at_the_saved_step_with_the_same_result(tmp_path, tiny_config):
  full = train_lib.train(tiny_config, str(tmp_path / "a"), _images())
  # Same run, "killed" after the step-2 checkpoint: drop the later one and start again.
  train_lib.train(tiny_config, str(tmp_path / "b"), _images())
  shutil.rmtree(tmp_path / "b" / "checkpoints" / str(tiny_config.train.num_steps))
  mngr = train_lib.checkpoint_manager(str(tmp_path / "b"), tiny_config)
  assert mngr.latest_step() == 2
  with open(tmp_path / "b" / "training.json", "w") as f:  # the record as the kill left it: 2 steps in 1000 s
    json.dump({"steps": 2, "seconds": 1000.0}, f)
  resumed = train_lib.train(tiny_config, str(tmp_path / "b"), _images())
  assert int(resumed.step) == tiny_config.train.num_steps
  record = json.load(open(tmp_path / "b" / "training.json"))  # the segments' wall time adds up
  assert record["steps"] == tiny_config.train.num_steps and record["seconds"] > 1000.0
  # Everything evaluation and the rest of training use: params, the EMA params that heal, the optimizer state.
  for part in ("params", "ema_params", "opt_state"):
    a, b = jax.tree.leaves(getattr(full, part)), jax.tree.leaves(getattr(resumed, part))
    assert len(a) == len(b) > 0, part
    for x, y in zip(a, b):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6, err_msg=part)


def test_finished_run_is_not_trained_again(tmp_path, tiny_config):
  train_lib.train(tiny_config, str(tmp_path), _images())
  before = sorted(os.listdir(tmp_path / "checkpoints"))
  state = train_lib.train(tiny_config, str(tmp_path), _images())
  assert int(state.step) == tiny_config.train.num_steps and sorted(os.listdir(tmp_path / "checkpoints")) == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config, monkeypatch):
  real = train_lib.pipeline.train_batches

  def poisoned(*args, start_step, **kw):
    for step, batch in enumerate(real(*args, start_step=start_step, **kw), start=start_step + 1):
      yield batch * np.nan if step >= 3 else batch

  monkeypatch.setattr(train_lib.pipeline, "train_batches", poisoned)
  with pytest.raises(train_lib.NonFiniteError, match=r"non-finite at step 3.*last good checkpoint \(step 2\)"):
    train_lib.train(tiny_config, str(tmp_path), _images())
  assert train_lib.checkpoint_manager(str(tmp_path), tiny_config).latest_step() == 2


def test_bfloat16_compute_keeps_float32_state_and_tracks_the_float32_loss(tiny_config):
  """Mixed precision: 20 steps on the same batches and keys; the bf16 loss stays within 10% of the float32 one
  and parameters, EMA and optimizer state stay float32."""
  import jax.numpy as jnp

  from crackjax import train as train_lib

  losses = {}
  for dtype in ("float32", "bfloat16"):
    c = tiny_config.copy_and_resolve_references()
    with c.unlocked():
      c.compute.dtype = dtype
      c.train.num_steps = 20
    state = train_lib.create_train_state(c, jax.random.PRNGKey(0))
    step = jax.jit(train_lib.make_train_step(c, train_lib.make_schedule(c)))
    batches = train_lib.pipeline.train_batches(_images(), batch_size=8, crop_size=16, seed=0, start_step=0)
    seq = []
    for _ in range(20):
      state, m = step(state, next(batches), jax.random.PRNGKey(1))
      seq.append(float(m["loss"]))
    losses[dtype] = np.array(seq)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((state.params, state.ema_params)))
    assert all(leaf.dtype in (jnp.float32, jnp.int32) for leaf in jax.tree.leaves(state.opt_state))
  rel = np.abs(losses["bfloat16"] - losses["float32"]) / losses["float32"]
  assert rel.mean() < 0.1 and losses["bfloat16"][-5:].mean() < losses["bfloat16"][:5].mean()
  assert not np.array_equal(losses["bfloat16"], losses["float32"])  # it did compute in another precision


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_run_resumes_with_the_same_data_stream(tmp_path, tiny_config, workers):
  """Crops streamed by grain from the array_record source; the iterator's position is in the checkpoint, so a run
  killed after its step-2 checkpoint ends where the uninterrupted one did."""
  from crackjax import jobs

  c = tiny_config.copy_and_resolve_references()
  with c.unlocked():
    c.data.stream, c.data.stream_workers = True, workers
  jobs.train_only(c, str(tmp_path / "a"))
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / str(c.train.num_steps))
  assert "data" in os.listdir(tmp_path / "b" / "checkpoints" / "2")  # the stream's position is saved
  jobs.train_only(c, str(tmp_path / "b"))
  full, resumed = train_lib.load_trained(c, str(tmp_path / "a")), train_lib.load_trained(c, str(tmp_path / "b"))
  for x, y in zip(jax.tree.leaves((full.params, full.ema_params)), jax.tree.leaves((resumed.params, resumed.ema_params))):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  assert int(full.step) == int(resumed.step) == c.train.num_steps


def test_a_fine_tuning_starts_from_the_named_teachers_ema_parameters(tmp_path, tiny_config):
  """train.init_from: a workdir or a params.npz gives the new run its first parameters (and EMA); a file of another
  model is refused naming the parameter; a resumed fine-tuning reads its own checkpoint, not the teacher again."""
  teacher = train_lib.train(tiny_config, str(tmp_path / "teacher"), _images())
  path = str(tmp_path / "params.npz")
  train_lib.save_params({"unet": teacher.ema_params}, path, {"model": "tiny"})
  for source in (str(tmp_path / "teacher"), path):
    c = _config(tiny_config, init_from=source, num_steps=0)
    state, _ = train_lib.restore_or_create(c, str(tmp_path / f"ft{len(source)}"), jax.random.PRNGKey(5))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(teacher.ema_params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(teacher.ema_params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # zero steps: the teacher itself, saved as the workdir's model (its threshold and red mask then chosen on the new
  # surface's own photos)
  zero = _config(tiny_config, init_from=path, num_steps=0)
  train_lib.train(zero, str(tmp_path / "zero"), _images())
  for a, b in zip(
    jax.tree.leaves(train_lib.load_trained(zero, str(tmp_path / "zero")).ema_params), jax.tree.leaves(teacher.ema_params)
  ):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # a fine-tuning trains on from the teacher and, resumed, from its own checkpoint
  c = _config(tiny_config, init_from=path)
  tuned = train_lib.train(c, str(tmp_path / "ft"), _images())
  pairs = zip(jax.tree.leaves(tuned.params), jax.tree.leaves(teacher.ema_params))
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in pairs)
  assert 0 < moved < 1.0
  again, _ = train_lib.restore_or_create(c, str(tmp_path / "ft"), jax.random.PRNGKey(5))
  for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(tuned.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
  # another model's parameters: the parameter and both shapes named
  wide = _config(tiny_config, init_from=path)
  with wide.unlocked():
    wide.model.channels = 16
  with pytest.raises(ValueError, match=r"holds another model: parameter .* is shape"):
    train_lib.restore_or_create(wide, str(tmp_path / "wide"), jax.random.PRNGKey(5))
  with pytest.raises(UserError, match="init_from='nowhere'"):
    train_lib.restore_or_create(_config(tiny_config, init_from="nowhere"), str(tmp_path / "x"), jax.random.PRNGKey(5))


def test_early_stopping_keeps_only_checkpoints_that_raise_the_val_score_and_stops_after_patience(tmp_path, tiny_config):
  """train.patience: the start is scored and saved; step 2 (0.7) beats it and is kept; steps 4 and 6 do not and are
  not saved; after two such the run stops at step 6, the model is step 2, and a rerun trains nothing more."""
  c = _config(tiny_config, num_steps=10, checkpoint_every=2, log_every=2)
  with c.unlocked():
    c.train.patience = 2
  scores = iter([0.5, 0.7, 0.6, 0.65])
  calls = []

  def validate(params):
    calls.append(params)
    return next(scores)

  workdir = str(tmp_path / "w")
  train_lib.train(c, workdir, _images(), validate=validate)
  assert len(calls) == 4 and train_lib.checkpoint_manager(workdir, c).all_steps() == [0, 2]
  record = json.load(open(os.path.join(workdir, "training.json")))
  assert (record["steps"], record["stopped_at"]) == (2, 6) and record["val"] == {"0": 0.5, "2": 0.7, "4": 0.6, "6": 0.65}
  again = train_lib.train(c, workdir, _images(), validate=lambda p: pytest.fail("a finished run is not validated again"))
  assert int(again.step) == 2
