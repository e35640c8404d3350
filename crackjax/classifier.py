"""The pool classifier: a small CNN that learns, from the pixels alone, what the teacher's surest cracks look like.

The root's unlabeled/ folder (labels withheld; about 15% cracked on concrete_pavement) holds real cracks among
sound photos. The trained teacher scores the folder and train/good; the unlabeled photos it scores above the
`classifier.quantile` of its own train/good scores are taken as cracks (pseudo-labels: the teacher's verdicts, never
a real label), train/good as sound, and a small fully convolutional net learns to tell them apart (self-training).
It sees what the residual map cannot carry: the look of a real crack against real surfaces, hairline or gap.

Its logit enters the image score as a per-photo shift in the teacher's own units,

    score = teacher score + weight * (MAD_t / MAD_c) * (logit - median_c),

median and MAD taken over the unlabeled folder (weight 1: both halves have the same spread there). The red mask
follows the verdict the shift moves (a photo passed as good carries none); its pixels, and so every pixel
metric, are the teacher's map's.

    net      `channels` stages of two 3x3 convs (ReLU), 2x2 max-pooling between stages, a 1x1 logit map; the
             image logit is the mean of its `topk` largest cells (a crack is a thin part of a photo)
    input    the photo at the working resolution, each colour minus its mean over the photo, over the photo's
             spread (the net learns shapes, not a surface's brightness); portrait photos turned to landscape.
             `input`: "photo" that alone; "photo_map" with a fourth channel, the teacher's localization map (the
             red mask's map) minus its median, over its own 99.5th percentile less the median, so a faint crack's
             line and a dark one's look alike (the pseudo-labels come from the map's strength, the classifier sees
             its shape); "map" that channel alone
    training class-balanced batches (half pseudo-cracks), flips, AdamW with warm-up and cosine decay; resumable

The teacher's pool scores are cached in shards under <workdir>/<classifier.name>/pool_scores/<key>/ (key: the
teacher's checkpoint, its map and pooling settings, the pool's names), the checkpoints in <workdir>/<classifier.name>/
checkpoints/, and what the shift needs in <workdir>/<classifier.name>/classifier_info.json.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from crackjax import choices, pool, report
from crackjax import train as train_lib
from crackjax.data import builders
from crackjax.scorer import Scorer, cache_key, compute_maps, count_params, sharded_cache, tiling

log = logging.getLogger(__name__)

SHAPE_FIELDS = ("channels", "topk", "input")  # a checkpoint's shape: another value needs another classifier.name
STATS = ("score_median", "score_mad", "logit_median", "logit_mad")  # the shift's statistics, written last
MIN_PSEUDO_CRACKS = 8  # fewer pseudo-cracks than this: nothing to learn from, the teacher's score stays alone
INPUTS = choices.CLASSIFIER_INPUTS  # classifier.input -> input channels
MAP_QUANTILE = 99.5  # the map channel: the map is scaled by this percentile of itself (less its median)
MAP_CLIP = (-1.0, 3.0)  # ... and clipped to this range


class ClassifierNet(nn.Module):
  channels: tuple[int, ...]
  topk: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """[B, H, W, 3 or 4] standardized photos (and scaled maps) -> [B] logits."""
    for i, c in enumerate(self.channels):
      if i:
        x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.relu(nn.Conv(c, (3, 3))(x))
      x = nn.relu(nn.Conv(c, (3, 3))(x))
    cells = nn.Conv(1, (1, 1))(x)[..., 0].reshape(x.shape[0], -1)
    return jax.lax.top_k(cells, min(self.topk, cells.shape[1]))[0].mean(-1)


def classifier_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  return os.path.join(workdir, config.classifier.name)


def net(config: ml_collections.ConfigDict) -> ClassifierNet:
  return ClassifierNet(tuple(config.classifier.channels), config.classifier.topk)


def standardize(img: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] -> float32 [H', W', 3] in landscape (H' <= W'), each colour minus its mean over the photo,
  all over the photo's spread (the standard deviation of all its values, every colour; plus 0.02, so a flat photo
  is not blown up): the same surface in brighter light gives the same input."""
  a = np.asarray(img, np.float32) / 255.0
  if a.shape[0] > a.shape[1]:
    a = np.rot90(a)
  return ((a - a.mean((0, 1))) / (a.std() + 0.02)).astype(np.float32)


def map_channel(loc: np.ndarray) -> np.ndarray:
  """A localization map [H, W] -> float32 [H, W, 1]: minus its median, over its MAP_QUANTILE percentile less the
  median, clipped to MAP_CLIP. Any positive scale of a map, and any offset, give the same channel."""
  m = np.asarray(loc, np.float32)
  med = float(np.median(m))
  top = float(np.percentile(m, MAP_QUANTILE)) - med
  u = (m - med) / top if top > 1e-12 else np.zeros_like(m)
  return np.clip(u, *MAP_CLIP).astype(np.float32)[..., None]


def inputs(img: np.ndarray, loc: np.ndarray | None = None, kind: str = "photo_map") -> np.ndarray:
  """The net's input: standardize(img) where no map is given; else, by classifier.input `kind`, the photo with
  loc's map_channel as a fourth channel ("photo_map") or that channel alone ("map"), turned to landscape with it."""
  a = standardize(img)
  if loc is None:
    return a
  if np.shape(loc) != img.shape[:2]:
    raise ValueError(f"a localization map of shape {np.shape(loc)} for a photo of {img.shape[:2]}")
  u = map_channel(loc)
  u = np.rot90(u) if img.shape[0] > img.shape[1] else u
  return u if kind == "map" else np.concatenate([a, u], -1)


def fit_canvas(a: np.ndarray, h: int, w: int, *, crop: bool) -> np.ndarray:
  """Reflect-pads [H, W, C] up to at least h x w; with crop, then cuts its centre h x w."""
  ph, pw = max(0, h - a.shape[0]), max(0, w - a.shape[1])
  if ph or pw:
    a = np.pad(a, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect" if min(a.shape[:2]) > 1 else "edge")
  if crop:
    y, x = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    a = a[y : y + h, x : x + w]
  return a


def canvas_of(images: list[np.ndarray]) -> tuple[int, int]:
  """The training canvas: the commonest landscape shape of the pool."""
  shapes = [tuple(sorted(im.shape[:2])) for im in images]
  values, counts = np.unique(np.array(shapes), axis=0, return_counts=True)
  h, w = values[int(np.argmax(counts))]
  return int(h), int(w)


# ------------------------------------------------------------------------------------------- the pseudo-labels


def pool_scores(config, workdir: str, scorer: Scorer, images: list[np.ndarray], names: list[str]) -> np.ndarray:
  """The teacher's image scores of the pool, computed once in shards and reused (a killed run keeps its finished
  shards; a damaged one is computed again)."""
  from crackjax.config import without_legacy

  digest = cache_key(scorer, without_legacy("anomaly", scorer.info), config.data.resize, config.seed, names)
  cache = os.path.join(classifier_dir(config, workdir), "pool_scores", digest)
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 15)
  shard = config.student.cache_shard_size
  n_shards = (len(images) + shard - 1) // shard

  def compute(lo, hi, k):
    res = compute_maps(
      scorer, images[lo:hi], jax.random.fold_in(key, k), batch_size=config.eval.batch_size, tile=tiling(config),
      desc=f"pool scores {k + 1}/{n_shards}", keep=np.zeros(hi - lo, bool),
    )  # fmt: skip
    return {"scores": res.scores}, list(res.scores.astype(np.float64))

  def read(z, n):
    return list(z["scores"].astype(np.float64)) if len(z["scores"]) == n and np.isfinite(z["scores"]).all() else None

  return np.array(sharded_cache(cache, names, shard, compute, read), np.float64)


def pseudo_labels(scores: np.ndarray, is_unlabeled: np.ndarray, quantile: float) -> tuple[np.ndarray, float]:
  """Which unlabeled photos count as cracks: those scored above the `quantile` of the train/good scores.
  Returns (bool mask over the unlabeled photos, the threshold)."""
  threshold = float(np.quantile(scores[~is_unlabeled], quantile))
  return scores[is_unlabeled] > threshold, threshold


def robust_scale(a: np.ndarray) -> tuple[float, float]:
  """(median, MAD) of a, the MAD floored so that a constant never divides by 0."""
  med = float(np.median(a))
  return med, max(float(np.median(np.abs(a - med))), 1e-6)


# ----------------------------------------------------------------------------------------------- training


def create_state(config: ml_collections.ConfigDict, key: jax.Array, shape: tuple[int, int]) -> train_state.TrainState:
  c = config.classifier
  model = net(config)
  params = jax.jit(model.init)(key, jnp.zeros((1, *shape, INPUTS[c.input])))["params"]
  tx = train_lib.make_optimizer(
    learning_rate=c.learning_rate, warmup_steps=c.warmup_steps, num_steps=c.num_steps, grad_clip=c.grad_clip,
    weight_decay=c.weight_decay,
  )  # fmt: skip
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def batches(pos: np.ndarray, neg: np.ndarray, *, batch_size: int, seed: int, start_step: int, member: int = 0):
  """Infinite stream of (photos [B, H, W, 3], targets [B]): half pseudo-cracks, half sound; batch `step` depends on
  (seed, member, step) only. Random left-right and up-down flips, per photo."""
  half = batch_size // 2
  step = start_step
  while True:
    rng = np.random.default_rng([seed, 31, step] if member == 0 else [seed, 31, member, step])
    x = np.concatenate([pos[rng.integers(0, len(pos), half)], neg[rng.integers(0, len(neg), batch_size - half)]])
    flips = rng.random((batch_size, 2)) < 0.5
    x = np.stack([a[:, ::-1] if fx else a for a, fx in zip(x, flips[:, 0])])
    x = np.stack([a[::-1] if fy else a for a, fy in zip(x, flips[:, 1])])
    t = np.r_[np.ones(half), np.zeros(batch_size - half)].astype(np.float32)
    yield np.ascontiguousarray(x), t
    step += 1


def make_step():
  def step(state, batch, key):
    del key  # the randomness is in the batches
    x, t = batch

    def loss(params):
      return optax.sigmoid_binary_cross_entropy(state.apply_fn({"params": params}, x), t).mean()

    value, grads = jax.value_and_grad(loss)(state.params)
    grad_norm = optax.global_norm(grads)
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": jnp.isfinite(value) & jnp.isfinite(grad_norm)}
    return state.apply_gradients(grads=grads), metrics

  return step


def check_compatible(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
  """The saved classifier_info.json, or None; a classifier folder trained with another shape is refused before
  anything in it is overwritten."""
  path = os.path.join(classifier_dir(config, workdir), "classifier_info.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} is unreadable ({e}); delete it and run --mode=train again to rebuild it") from None
  for field in SHAPE_FIELDS:
    now, old = config.classifier[field], saved.get("classifier", {}).get(field)
    now = list(now) if isinstance(now, tuple) else now
    if old is not None and old != now:
      raise ValueError(
        f"{classifier_dir(config, workdir)} holds a classifier trained with config.classifier.{field}={old!r}, not "
        f"{now!r}; use another --config.classifier.name for a different one (or the saved value to continue)"
      )
  return saved


def mean_logit_fn(config, params: list, canvas: tuple[int, int]) -> Callable[..., float]:
  """(uint8 photo (any size: padded up to the canvas, never cut), its localization map) -> the members' mean logit.
  The map is read where classifier.input shows it, and required then."""
  apply = jax.jit(lambda ps, x: jnp.mean(jnp.stack([net(config).apply({"params": p}, x) for p in ps])))
  kind = config.classifier.input
  use_map = kind != "photo"

  def fn(img: np.ndarray, loc: np.ndarray | None = None) -> float:
    if use_map and loc is None:
      raise ValueError(f"this classifier (classifier.input={kind!r}) reads each photo's localization map; none was given")
    return float(apply(params, fit_canvas(inputs(img, loc if use_map else None, kind), *canvas, crop=False)[None]))

  return fn


def logits(config, params: list, images: list[np.ndarray], canvas: tuple[int, int], maps: list | None = None) -> np.ndarray:
  """The members' mean logit of each uint8 photo (given its localization map where classifier.input shows it)."""
  fn = mean_logit_fn(config, params, canvas)
  return np.array([fn(im, None if maps is None else m) for im, m in zip(images, maps or [None] * len(images))])


def train(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> None:
  """Pool scores (cached), pseudo-labels, then the classifier to classifier.num_steps (resumable), then the shift's
  median and MAD over the unlabeled folder. Skipped, with the reason logged, where the root has no unlabeled/
  folder or the teacher finds too few cracks in it."""

  c = config.classifier
  saved = check_compatible(config, workdir)
  cdir = classifier_dir(config, workdir)
  splits = builders.builder_for(config, workdir, config.data.root).info.splits
  if "unlabeled" not in splits or "train" not in splits:
    _save_info(cdir, config, {"skipped": f"{config.data.root or 'synthetic data'} has no unlabeled/ folder (or no train/good)"})
    log.warning(
      "classifier.weight=%g, but %s has no unlabeled/ folder (or no train/good) to learn from: the teacher's score "
      "stays alone", c.weight, config.data.root or "the synthetic data",
    )  # fmt: skip
    return
  pool_config = config.copy_and_resolve_references()
  with pool_config.unlocked():
    pool_config.student.update(use_unlabeled=True, synthetic_cracks=0.0, max_pool_images=0)
  images, names = pool.load_pool(pool_config, workdir)
  unl = np.array([n.startswith("unlabeled/") for n in names])
  t0 = time.time()
  scores = pool_scores(config, workdir, scorer, images, names)
  is_pos, threshold = pseudo_labels(scores, unl, c.quantile)
  log.info(
    "pool scores of %d photos ready (%.0f s): %d of %d unlabeled photos above %.4g, the %.4g quantile of train/good",
    len(names), time.time() - t0, int(is_pos.sum()), int(unl.sum()), threshold, c.quantile,
  )  # fmt: skip
  info = {
    "classifier": {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.to_dict().items()},
    "threshold": threshold,
    "n_pseudo_cracks": int(is_pos.sum()),
    "n_sound": int((~unl).sum()),
  }
  if is_pos.sum() < MIN_PSEUDO_CRACKS:
    info["skipped"] = f"only {int(is_pos.sum())} pseudo-cracks (< {MIN_PSEUDO_CRACKS})"
    _save_info(cdir, config, info)
    log.warning("classifier: %s in the unlabeled folder; the teacher's score stays alone", info["skipped"])
    return
  canvas = canvas_of(images)
  info["canvas"] = list(canvas)
  # the pool's localization maps, for a classifier that reads them: the student's teacher-map cache (student.cache_dir
  # or <workdir>/teacher_maps), shared with any student of this teacher and pool
  maps = pool.teacher_maps(pool_config, workdir, scorer, images, names) if c.input != "photo" else [None] * len(images)
  unl_images = [im for im, u in zip(images, unl) if u]
  unl_maps = [m for m, u in zip(maps, unl) if u]

  def stack(pairs):  # (photo, map) pairs -> the net's training inputs on the canvas
    return np.stack([fit_canvas(inputs(im, m, c.input), *canvas, crop=True) for im, m in pairs])

  neg = stack((im, m) for im, m, u in zip(images, maps, unl) if not u)
  info["score_median"], info["score_mad"] = robust_scale(scores[unl])
  info["round_pseudo_cracks"] = []
  trained_now, lg = False, np.zeros(0)
  for rnd in range(1, c.rounds + 1):
    if rnd > 1:  # self-training: the same threshold, on the teacher's score shifted by the last round's classifier
      fused_pos = scores[unl] + np.array([shift(c.weight, info, v) for v in lg]) > threshold
      if fused_pos.sum() >= MIN_PSEUDO_CRACKS:
        is_pos = fused_pos
      else:  # the shifted score finds too few: this round learns from the last round's pseudo-cracks
        log.warning("classifier round %d: only %d pseudo-cracks; keeping round %d's", rnd, int(fused_pos.sum()), rnd - 1)
      log.info(
        "classifier round %d: %d pseudo-cracks (round %d: %d)", rnd, int(is_pos.sum()), rnd - 1, info["round_pseudo_cracks"][-1]
      )
    info["round_pseudo_cracks"].append(int(is_pos.sum()))
    pos = stack((im, m) for im, m, p in zip(unl_images, unl_maps, is_pos) if p)
    params = []
    for member in range(c.members):
      state, ran = _train_member(config, workdir, member, canvas, pos, neg, info, rnd)
      params.append(state.params)
      trained_now |= ran
    last = rnd == c.rounds
    if last and not trained_now and saved and all(k in saved for k in STATS) and _same_ensemble(saved, c):
      log.info("classifier: all %d member(s) trained to classifier.num_steps=%d: training skipped", c.members, c.num_steps)
      return
    lg = logits(config, params, unl_images, canvas, unl_maps)
    info["logit_median"], info["logit_mad"] = robust_scale(lg)
  info["members"], info["rounds"] = c.members, c.rounds
  _save_info(cdir, config, info)
  log.info(
    "classifier: unlabeled folder's teacher scores median %.4g MAD %.4g, logits median %.4g MAD %.4g",
    info["score_median"], info["score_mad"], info["logit_median"], info["logit_mad"],
  )  # fmt: skip


def _same_ensemble(saved: dict, c) -> bool:
  return saved.get("members", 1) == c.members and saved.get("rounds", 1) == c.rounds


def member_dir(config: ml_collections.ConfigDict, workdir: str, member: int, rnd: int = 1) -> str:
  """Round 1's member 0 lives in the classifier's folder itself (a single classifier's layout), member k in
  member_k/; round r > 1's the same under round_r/."""
  cdir = classifier_dir(config, workdir)
  base = cdir if rnd == 1 else os.path.join(cdir, f"round_{rnd}")
  return base if member == 0 else os.path.join(base, f"member_{member}")


def _member_key(config, member: int) -> jax.Array:
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 16)
  return key if member == 0 else jax.random.fold_in(key, member)


def _train_member(config, workdir: str, member: int, canvas, pos: np.ndarray, neg: np.ndarray, info: dict, rnd: int = 1):
  """One member of round `rnd` to classifier.num_steps (resumable); members differ in their initialization and
  batches only (a member's seeds are the same in every round). Returns (state, whether any step ran)."""
  c = config.classifier
  mdir = member_dir(config, workdir, member, rnd)
  key = _member_key(config, member)
  state = create_state(config, key, canvas)
  mngr = train_lib.checkpoint_manager(mdir, config)
  state = train_lib.restore_latest(mngr, state)
  start = int(state.step)
  if start >= c.num_steps:
    return state, False
  step_fn, replicated, batch_sharding = train_lib.sharded_step(
    make_step(), batch_size=c.batch_size, field="classifier.batch_size"
  )
  log.info(
    "Training pool classifier %d of %d, round %d (%d params) from step %d to %d on %d pseudo-cracks and %d sound photos",
    member + 1, c.members, rnd, count_params(state.params), start, c.num_steps, len(pos), len(neg),
  )  # fmt: skip
  state = train_lib.fit(
    state=jax.device_put(state, replicated),
    mngr=mngr,
    step_fn=step_fn,
    batches=batches(pos, neg, batch_size=c.batch_size, seed=config.seed, start_step=start, member=member),
    batch_sharding=batch_sharding,
    key=key,
    start=start,
    total=c.num_steps,
    log_every=config.train.log_every,
    checkpoint_every=config.train.checkpoint_every,
    workdir=mdir,
    hparams={k: v for k, v in info["classifier"].items() if isinstance(v, (int, float, str))},
  )
  return state, True


def _save_info(cdir: str, config, info: dict) -> None:
  os.makedirs(cdir, exist_ok=True)
  info.setdefault("classifier", {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.classifier.to_dict().items()})
  report.write_json(os.path.join(cdir, "classifier_info.json"), info)


def shift(weight: float, info: dict, logit: float) -> float:
  """The classifier's shift of one photo's score, in the teacher's units."""
  return weight * info["score_mad"] / info["logit_mad"] * (logit - info["logit_median"])


def load_prior(config: ml_collections.ConfigDict, workdir: str) -> Callable[..., float] | None:
  """(uint8 photo, its localization map) -> its score shift, from the classifier trained in
  <workdir>/<classifier.name>/ (the map is read where classifier.input shows it); None where
  classifier.weight is 0 or training skipped it (no unlabeled folder: logged then)."""
  if not config.classifier.weight:
    return None
  saved = check_compatible(config, workdir)
  cdir = classifier_dir(config, workdir)
  if saved is None:
    raise FileNotFoundError(train_lib.NOT_TRAINED.format(workdir=workdir, dir=os.path.join(cdir, "checkpoints")))
  if "skipped" in saved:
    log.info("classifier: %s; the teacher's score alone", saved["skipped"])
    return None
  if not all(k in saved for k in STATS):
    raise FileNotFoundError(f"the classifier in {cdir} did not finish training: run --mode=train again to resume it")
  if not _same_ensemble(saved, config.classifier):
    raise ValueError(
      f"{cdir} holds the statistics of {saved.get('members', 1)} member(s) and {saved.get('rounds', 1)} round(s), not "
      f"config.classifier.members={config.classifier.members} and rounds={config.classifier.rounds}: run --mode=train "
      "with these values to train the rest"
    )
  canvas = tuple(saved["canvas"])
  fresh = create_state(config, jax.random.PRNGKey(0), canvas)
  params = [
    train_lib.load_trained_state(member_dir(config, workdir, k, config.classifier.rounds), config, fresh).params
    for k in range(config.classifier.members)
  ]
  fn, weight = mean_logit_fn(config, params, canvas), float(config.classifier.weight)
  return lambda img, loc=None: shift(weight, saved, fn(img, loc))
