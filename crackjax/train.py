"""Training the epsilon-UNet on normal concrete: L_simple of Ho et al. (2020), eq. 14.

    t ~ U{t_min .. t_max},  eps ~ N(0, I),  x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps
    loss = || eps - eps_hat(x_t, t) ||^2

Healing only ever visits t <= anomaly.t_start, so `train.t_max` can stop there and spend every step on the
noise levels that matter. The step is pure and jitted over a one-axis Mesh('data'): the batch is split across
devices, the state replicated, so one code path serves 1 CPU, 1 GPU or 8 TPU cores. Keys are
fold_in(train_key, step); the crops are a function of (seed, step); a killed run resumes from its last checkpoint
and sees the same stream. A non-finite loss or gradient stops the run with the last good checkpoint kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from clu import metric_writers, periodic_actions
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from crackjax import distributed, files, precision, streams
from crackjax import schedule as schedule_lib
from crackjax.data import pipeline, stream
from crackjax.errors import UserError
from crackjax.scorer import count_params
from crackjax.unet import UNet, UNetConfig

log = logging.getLogger(__name__)


GRAD_CLIP = 1.0  # every kind's global gradient-norm clip
MAX_CHECKPOINTS = 2  # checkpoints a workdir keeps: the newest and one before it, should the newest be damaged


class TrainState(train_state.TrainState):
  ema_params: Any = None


def unet_config(config: ml_collections.ConfigDict) -> UNetConfig:
  m = config.model
  return UNetConfig(
    channels=m.channels,
    channel_mult=tuple(m.channel_mult),
    num_res_blocks=m.num_res_blocks,
    num_groups=m.num_groups,
  )


def make_schedule(config: ml_collections.ConfigDict) -> schedule_lib.Schedule:
  s = config.schedule
  return schedule_lib.make_schedule(kind=s.kind, num_timesteps=s.num_timesteps, beta_start=s.beta_start, beta_end=s.beta_end)


def make_optimizer(*, learning_rate: float, warmup_steps: int, num_steps: int) -> optax.GradientTransformation:
  """Linear warm-up to `learning_rate`, cosine decay to 0 at `num_steps`, global-norm clipping at GRAD_CLIP, Adam
  (every kind's optimizer: the teacher, the student and the baselines each pass their own section's fields)."""
  lr = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(1, warmup_steps), max(num_steps, warmup_steps + 1))
  return optax.chain(optax.clip_by_global_norm(GRAD_CLIP), optax.adamw(lr, weight_decay=0.0))


def create_train_state(config: ml_collections.ConfigDict, key: jax.Array) -> TrainState:
  model = UNet(unet_config(config))
  crop = config.data.crop_size
  params = jax.jit(model.init)(key, jnp.zeros((1, crop, crop, 3)), jnp.zeros((1,), jnp.int32))["params"]
  t = config.train
  tx = make_optimizer(learning_rate=t.learning_rate, warmup_steps=t.warmup_steps, num_steps=t.num_steps)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=jax.tree.map(jnp.copy, params))
  # ema_params is a copy: both are donated


def make_train_step(config: ml_collections.ConfigDict, schedule: schedule_lib.Schedule):
  """Returns train_step(state, x0: [B, H, W, 3] in [-1, 1], key) -> (state, metrics), pure and jittable."""
  t_min, t_max, ema_decay = config.train.t_min, config.train.t_max, config.train.ema_decay
  dt = precision.dtype(config)

  def train_step(state: TrainState, x0: jnp.ndarray, key: jax.Array):
    key = jax.random.fold_in(key, state.step)
    k_t, k_eps, _ = jax.random.split(key, 3)  # three: the stream of the runs recorded when the UNet had dropout
    t = jax.random.randint(k_t, (x0.shape[0],), t_min, t_max + 1)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    x_t = schedule_lib.q_sample(schedule, x0=x0, t=t, eps=eps)

    def loss_fn(params):
      eps_hat = precision.apply(state.apply_fn, params, x_t, t, compute_dtype=dt)
      return jnp.mean((eps_hat - eps) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grad_norm = optax.global_norm(grads)
    new_state = state.apply_gradients(grads=grads)
    decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, new_state.params)
    metrics = {"loss": loss, "grad_norm": grad_norm, "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm)}
    return new_state.replace(ema_params=ema), metrics

  return train_step


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict, *, create: bool = True) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=MAX_CHECKPOINTS, create=create)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)


def _streamed(mngr: ocp.CheckpointManager, step: int) -> bool:
  """Whether the step holds a streamed run's data position beside its state (a Composite checkpoint)."""
  return os.path.isdir(os.path.join(str(mngr.directory), str(step), "data"))


def _restore(mngr: ocp.CheckpointManager, step: int, target, data_iter):
  if not _streamed(mngr, step):  # an in-memory run's checkpoint
    return mngr.restore(step, args=ocp.args.StandardRestore(target))
  # a streamed run's: the state, and the stream's position when training goes on (not for evaluation)
  items = {"state": ocp.args.StandardRestore(target)}
  if data_iter is not None:
    items["data"] = stream.restore_args(data_iter)
  return mngr.restore(step, args=ocp.args.Composite(**items)).state


def _intact(mngr: ocp.CheckpointManager, step: int) -> bool:
  """Whether the step's saved state reads as saved (without a target): a step that does not fit the model but
  reads is intact, and the config is what differs; one that does not read is damaged."""
  try:
    if _streamed(mngr, step):
      mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    else:
      mngr.restore(step, args=ocp.args.StandardRestore())
  except Exception:  # noqa: BLE001 - whatever orbax, tensorstore or json raise on a damaged file
    return False
  return True


def restore_latest(mngr: ocp.CheckpointManager, state, data_iter=None, *, repair: bool = True):
  """The newest intact checkpoint in `mngr` restored into the structure of `state` (or `state` itself if there is
  none); with `data_iter` (a streamed run, crackjax/data/stream.py) the iterator's saved position too.

  A damaged step (what a crash or a full disk during a save leaves) is named, moved aside beside the checkpoints
  (crackjax.files.set_aside, never deleted), and the next older one is restored, so that training goes on from
  there and ends where an uninterrupted run would. A step that reads but does not fit this config's model is the
  config's fault, and says so; with no intact step left, one error names the folder. repair=False (a run that only
  reads the model: evaluation, predict) moves nothing and names the damaged step, with the command that repairs it."""
  # Restored straight into the replicated layout of the mesh: with several processes, a state restored onto one
  # device could not be spread over the others' devices afterwards.
  replicated = NamedSharding(make_mesh(), P())
  target = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated) if hasattr(x, "shape") else x, state
  )
  damaged = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      restored = _restore(mngr, step, target, data_iter)
    except Exception as e:  # noqa: BLE001 - sorted out below: the config's fault, or a damaged step
      reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
      if _intact(mngr, step):  # orbax names the mismatching array; the config field is what the user can change
        raise UserError(
          f"the checkpoint in {mngr.directory} does not fit this config's model ({reason}); "
          "use the config it was trained with, or a new --workdir"
        ) from None
      if not repair:
        raise UserError(
          f"checkpoint step {step} in {mngr.directory} is damaged ({reason}); run the training command again: it sets "
          "the step aside and trains on from the newest intact one"
        ) from None
      if jax.process_count() > 1:  # the processes would move it at once: the user moves it, once
        raise UserError(
          f"checkpoint step {step} in {mngr.directory} is damaged ({reason}); move it aside and run again"
        ) from None
      damaged.append(files.set_aside(os.path.join(str(mngr.directory), str(step)), f"checkpoint step {step}", reason))
      mngr.reload()
      continue
    log.info("Restored checkpoint at step %d from %s", step, mngr.directory)
    return restored
  if damaged:
    raise UserError(
      f"every checkpoint in {mngr.directory} is damaged (moved aside: {', '.join(damaged)}); train again with a new "
      "--workdir, or remove the checkpoints folder to start this one over"
    )
  return state


def restore_or_create(config, workdir, key, data_iter=None) -> tuple[TrainState, ocp.CheckpointManager]:
  """The workdir's newest intact checkpoint; without one, a fresh state (from train.init_from's parameters where
  it names a teacher)."""
  mngr = checkpoint_manager(workdir, config)
  state = create_train_state(config, key)
  if config.train.init_from and mngr.latest_step() is None:
    params = initial_params(config, state.params)
    state = state.replace(params=params, ema_params=jax.tree.map(jnp.copy, params))
  return restore_latest(mngr, state, data_iter), mngr


# The teachers the repository ships (train.init_from=<name>): <name>.npz beside this package's weights/README.md
# says which command and data trained each.
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def save_params(params, path: str, meta: dict) -> None:
  """A parameter tree as one .npz ('/'-joined paths as keys) with `meta` (JSON) beside the arrays."""
  flat = {"/".join(str(getattr(k, "key", k)) for k in kp): np.asarray(v) for kp, v in jax.tree_util.tree_leaves_with_path(params)}
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.npz"
  with files.writing(path):
    np.savez(tmp, __meta__=np.array(json.dumps(meta)), **flat)
  os.replace(tmp, path)


def load_params(path: str, like) -> tuple[Any, dict]:
  """(parameters shaped like `like`, meta) from save_params' file; a ValueError names the first array that is
  missing or of another shape (another model's parameters)."""
  try:
    with np.load(path) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f"{path} is not a parameter file ({type(e).__name__}: {e})") from None
  meta = json.loads(str(arrays.pop("__meta__", "{}")))
  out = []
  for kp, v in jax.tree_util.tree_leaves_with_path(like):
    name = "/".join(str(getattr(k, "key", k)) for k in kp)
    if name not in arrays or arrays[name].shape != v.shape:
      got = "missing" if name not in arrays else f"shape {arrays[name].shape}"
      raise UserError(
        f"{path} holds another model: parameter {name} is {got}, this config's is {v.shape} "
        f"(the file's model: {meta.get('model', '?')}); set config.model to the file's"
      )
    out.append(jnp.asarray(arrays[name], v.dtype))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), out), meta


def init_source(init_from: str) -> str:
  """train.init_from as a path: a shipped teacher's name (WEIGHTS/<name>.npz), a .npz file, or a workdir."""
  shipped = os.path.join(WEIGHTS, f"{init_from}.npz")
  if os.sep not in init_from and os.path.exists(shipped):
    return shipped
  if not os.path.exists(init_from):
    names = sorted(f.removesuffix(".npz") for f in os.listdir(WEIGHTS) if f.endswith(".npz")) if os.path.isdir(WEIGHTS) else []
    raise UserError(
      f"config.train.init_from={init_from!r} is neither a shipped teacher ({', '.join(names) or 'none'}), a .npz of "
      "parameters nor a trained teacher's workdir"
    )
  return init_from


def initial_params(config: ml_collections.ConfigDict, like):
  """The EMA parameters of the teacher train.init_from names, to fine-tune from (same model shape)."""
  src = init_source(config.train.init_from)
  if os.path.isdir(src):
    params = load_trained(config, src).ema_params
  else:  # an exported scorer's parameters (crackjax/export.py): the teacher's UNet under "unet"
    params = load_params(src, {"unet": like})[0]["unet"]
  log.info("Initialised the UNet from %s (fine-tuning)", src)
  return params


NOT_TRAINED = (
  "no trained model in {workdir} (no checkpoint in {dir}): train it first with the same --config and --workdir "
  "and no --mode (train and evaluate) or --mode=train"
)


def load_trained_state(workdir: str, config: ml_collections.ConfigDict, state):
  """The latest checkpoint of `workdir` restored into `state`'s structure; FileNotFoundError naming the workdir and
  how to train when there is none (and no empty checkpoints/ folder left behind)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory) or not any(n.isdigit() for n in os.listdir(directory)):
    raise UserError(NOT_TRAINED.format(workdir=workdir, dir=directory))
  return restore_latest(checkpoint_manager(workdir, config, create=False), state, repair=False)


def load_trained(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """The trained teacher state in `workdir`; a clear error when there is none."""
  return load_trained_state(workdir, config, create_train_state(config, jax.random.PRNGKey(0)))


class NonFiniteError(UserError):
  """The loss or gradient norm stopped being finite; the last good checkpoint is kept."""


def train(
  config: ml_collections.ConfigDict, workdir: str, train_images: list[np.ndarray] | None, source=None, validate=None
) -> TrainState:
  """Trains up to config.train.num_steps (continuing from the workdir's checkpoint); returns the final state.
  train_images: the in-memory split; or, with config.data.stream, `source` (the train split's data source).
  validate(ema_params) -> a val score, higher better: with train.patience > 0 only checkpoints that raise it are
  kept, and training stops after train.patience checkpoints without (`Validation`)."""
  keys = {name: streams.key(config.seed, name) for name in ("init", "train")}
  data_iter = None
  if config.data.stream:
    loader = stream.train_loader(
      source, batch_size=config.train.batch_size, crop_size=config.data.crop_size, resize=config.data.resize,
      seed=config.seed, workers=config.data.stream_workers,
    )  # fmt: skip
    data_iter = iter(loader)
  state, mngr = restore_or_create(config, workdir, keys["init"], data_iter)
  start = int(state.step)
  total = config.train.num_steps
  val = Validation(validate, config.train.patience, workdir) if validate and config.train.patience else None
  if val is not None and val.start(state, mngr, start):
    total = start  # a finished run that stopped early: its best checkpoint is the model
  if start >= total:
    if mngr.latest_step() is None:  # train.num_steps=0: the initial (fine-tuning: the teacher's) parameters are the model
      mngr.save(0, args=ocp.args.StandardSave(host_copy(state)))
      mngr.wait_until_finished()
    log.info("Checkpoint at step %d >= train.num_steps=%d: training skipped", start, total)
    return state

  step_fn, replicated, batch_sharding = sharded_step(
    make_train_step(config, make_schedule(config)), batch_size=config.train.batch_size, field="train.batch_size"
  )
  n_dev = batch_sharding.mesh.devices.size
  state = jax.device_put(state, replicated)

  if data_iter is not None:
    batches = data_iter
  else:
    batches = pipeline.train_batches(
      train_images, batch_size=config.train.batch_size, crop_size=config.data.crop_size, seed=config.seed, start_step=start
    )
  n_params = count_params(state.params)
  n_images = len(source) if config.data.stream else len(train_images)
  log.info("Training %d params from step %d to %d on %d device(s), %d images", n_params, start, total, n_dev, n_images)
  hparams = {k: v for k, v in config.to_dict()["train"].items() if isinstance(v, (int, float, str))}
  return fit(
    state=state,
    mngr=mngr,
    step_fn=step_fn,
    batches=batches,
    batch_sharding=batch_sharding,
    key=keys["train"],
    start=start,
    total=total,
    log_every=config.train.log_every,
    checkpoint_every=config.train.checkpoint_every,
    workdir=workdir,
    hparams=hparams,
    data_iter=data_iter,
    val=val,
  )


class Validation:
  """Early stopping on a val score (train.patience): every checkpoint step's EMA parameters are scored, a checkpoint
  is saved only when the score beats the best so far (the start's included: a fine-tuning that never beats its
  teacher leaves the teacher), and training stops after `patience` checkpoints without. Scores and the step it
  stopped at are kept in training.json, so a killed run resumes from the best checkpoint and ends as an
  uninterrupted one, and a finished one is not trained again."""

  def __init__(self, validate, patience: int, workdir: str):
    self.validate, self.patience, self.workdir = validate, patience, workdir
    self.record = _load_record(workdir)
    self.scores = {int(k): v for k, v in self.record.get("val", {}).items()}
    self.best, self.waited = -float("inf"), 0

  def start(self, state, mngr, step: int) -> bool:
    """Scores the starting point (saved as a checkpoint when there is none); True if this run already stopped."""
    if self.record.get("stopped_at") is not None and self.record.get("steps") == step:
      log.info("Training stopped at step %d (no better val score since step %d): kept", self.record["stopped_at"], step)
      return True
    if step not in self.scores:
      self.scores[step] = float(self.validate(state.ema_params))
    self.best = self.scores[step]
    log.info("val score (synthetic-crack AUROC) at step %d: %.4f", step, self.best)
    if mngr.latest_step() is None:
      mngr.save(step, args=ocp.args.StandardSave(host_copy(state)))
      mngr.wait_until_finished()
    return False

  def keep(self, state, step: int) -> bool:
    """Scores the step: True to save it as the new best; raises StopIteration after `patience` without."""
    score = self.scores[step] = float(self.validate(state.ema_params))
    better = score > self.best
    self.best, self.waited = max(self.best, score), 0 if better else self.waited + 1
    log.info("val score at step %d: %.4f (%s)", step, score, "best, kept" if better else f"{self.waited} without gain")
    if self.waited >= self.patience:
      raise StopIteration(step)
    return better


def sharded_step(step, *, batch_size: int, field: str):
  """`step(state, batch, key) -> (state, metrics)` jitted over the mesh of all devices: state and key replicated,
  the batch split over 'data', the old state donated. Returns (step_fn, replicated, batch_sharding); a batch size
  the devices do not divide is refused naming the config `field` and both numbers."""
  mesh = make_mesh()
  if batch_size % mesh.devices.size:
    raise UserError(f"config.{field}={batch_size} must be divisible by the {mesh.devices.size} devices")
  replicated, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  step_fn = jax.jit(
    step, in_shardings=(replicated, batch_sharding, replicated), out_shardings=(replicated, replicated), donate_argnums=0
  )
  return step_fn, replicated, batch_sharding


def _load_record(workdir: str) -> dict:
  try:
    with open(os.path.join(workdir, "training.json")) as f:
      rec = json.load(f)
    return rec if isinstance(rec, dict) else {}
  except (OSError, ValueError):
    return {}


def training_seconds(workdir: str, start: int) -> float:
  """Wall seconds spent training up to step `start` (training.json; 0 for a fresh run or an unknown history)."""
  rec = _load_record(workdir)
  try:
    return float(rec["seconds"]) if int(rec["steps"]) == start else 0.0
  except (KeyError, TypeError, ValueError):
    return 0.0


def write_training_record(workdir: str, steps: int, seconds: float, steady: float | None = None, **more) -> None:
  """<workdir>/training.json: the checkpoint step the model is, the wall seconds of training over every resumed
  segment, the loop's steady rate in this segment (steps/s after its first log interval: compilation left out),
  and `more` (the val scores per step and where early stopping stopped)."""
  path = os.path.join(workdir, "training.json")
  rec = {"steps": steps, "seconds": round(seconds, 1)}
  if steady is not None:
    rec["steady_steps_per_second"] = round(steady, 4)
  rec.update({k: v for k, v in more.items() if v is not None})
  with open(path + ".tmp", "w") as f:
    json.dump(rec, f)
  os.replace(path + ".tmp", path)


def host_copy(state):
  """The state as host arrays when this process holds all of it (one process): orbax writes those about 5x faster
  than replicated device arrays (docs/benchmark.md); with several processes the device arrays themselves,
  which orbax writes from every process. Restoring into a sharded target gives device arrays either way."""
  if all(getattr(x, "is_fully_addressable", True) for x in jax.tree.leaves(state)):
    return jax.device_get(state)
  return state


def fit(
  *, state, mngr, step_fn, batches, batch_sharding, key, start, total, log_every, checkpoint_every, workdir, hparams,
  data_iter=None, val: Validation | None = None,
):  # fmt: skip
  """The training loop every kind shares: steps, progress with ETA, TensorBoard scalars, checkpoints (with the
  streamed data's position when `data_iter` is its iterator, whose batches are already this process's rows; with
  `val`, only those that raise the val score, and an early stop), and a stop on non-finite loss that keeps the last
  good checkpoint. Returns the final state."""
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if start == 0:
    writer.write_hparams(hparams)
  report = periodic_actions.ReportProgress(num_train_steps=total, writer=writer, every_steps=log_every, every_secs=None)
  pending: list[dict] = []
  last_good = start
  t0 = time.time()
  seconds_before = training_seconds(workdir, start)
  rows = None
  first = None  # (step, time) at the first log: the steady rate is measured from there
  for step in range(start + 1, total + 1):
    batch = next(batches)
    if jax.process_count() > 1 and data_iter is None:  # each process builds the global batch, feeds its own rows
      rows = rows or distributed.local_rows(len(jax.tree.leaves(batch)[0]))
      batch = jax.tree.map(lambda a: a[rows[0] : rows[1]], batch)  # noqa: B023
    batch = distributed.global_batch(batch, batch_sharding)
    state, metrics = step_fn(state, batch, key)
    pending.append(metrics)
    report(step)
    if step % log_every == 0 or step % checkpoint_every == 0 or step == total:
      fetched = jax.device_get(pending)  # one host transfer per interval, not per step
      pending = []
      if not all(m["finite"] for m in fetched):
        bad = step - len(fetched) + 1 + next(i for i, m in enumerate(fetched) if not m["finite"])
        raise NonFiniteError(
          f"loss or gradient norm became non-finite at step {bad} (loss={fetched[-1]['loss']}); "
          f"stopped. The last good checkpoint (step {last_good}) is kept in {mngr.directory}. "
          "Try a lower learning rate or gradient clip."
        )
      summary = {k: float(np.mean([m[k] for m in fetched])) for k in ("loss", "grad_norm")}
      writer.write_scalars(step, summary)
      if step % log_every == 0 or step == total:
        elapsed = time.time() - t0
        rate = (step - start) / max(elapsed, 1e-9)
        first = first or (step, time.time())
        log.info(
          "step %d/%d  loss %.4f  grad_norm %.3f  %.2f steps/s  elapsed %.0f s  ETA %.0f s",
          step, total, summary["loss"], summary["grad_norm"], rate, elapsed, (total - step) / max(rate, 1e-9),
        )  # fmt: skip
      if step % checkpoint_every == 0 or step == total:
        stopped = None
        try:
          keep = val is None or val.keep(state, step)
        except StopIteration:
          keep, stopped = False, step
        if keep:
          saved = host_copy(state)
          if data_iter is None:
            mngr.save(step, args=ocp.args.StandardSave(saved))
          else:
            mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(saved), data=stream.save_args(data_iter)))
          mngr.wait_until_finished()
          last_good = step
        if distributed.is_writer():
          steady = (step - first[0]) / (time.time() - first[1]) if first and step > first[0] else None
          scores = None if val is None else {str(k): round(v, 6) for k, v in sorted(val.scores.items())}
          write_training_record(workdir, last_good, seconds_before + time.time() - t0, steady, val=scores, stopped_at=stopped)
        if stopped is not None:
          log.info(
            "Stopped at step %d: %d checkpoints without a better val score; the model is step %d", step, val.patience, last_good
          )
          break
  writer.flush()
  return state
