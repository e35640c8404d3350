"""The Scorer: what every model kind gives evaluation, prediction, export, sweeps, failures and benchmarks.

A Scorer turns a batch of images into anomaly maps,

    maps(params, x: [B, H, W, 3] in [-1, 1], key, ids: [B] int32) -> [B, H, W]      (H, W divisible by `multiple`)

where a kind that draws noise draws row b's from fold_in(key, ids[b]), ids[b] a function of the image's own id
(its index in a split, a hash of its file name in predict) and its tile: an image gets the same noise whichever
batch it lands in. The image score is pooled on the host from each image's own map (anomaly.image_score), so
padding never enters a score, and images of different sizes share compiled shapes. What the scoring functions
below hand on for the red mask, the pixel metrics and the figures is the localization map
(anomaly.localization_map: the image map plus `localization_darkness` times the input's relative darkness; the
image map itself where that is 0, as for a teacher whose maps a student distils).

- Buckets: each side is padded (reflected) up to the next size of a ladder spaced about 1.5x apart (16, 24, 32,
  48, 64, 96, ... rounded up to `multiple`), so a folder of mixed photos compiles once per bucket, not per size.
- Tiles: an image whose longer side exceeds `Tiling.max_side` is cut into overlapping `size` x `size` tiles; each
  tile's centre (all but `overlap` pixels at inner borders) is pasted into the map. Memory is bounded by the tile
  batch, not the photo, and a model whose receptive field fits in `overlap` gives the untiled map exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import queue
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from crackjax import anomaly, files

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Pooling:
  """How an image map [H, W] becomes the image score (anomaly.image_score): config.anomaly's fields of these names."""

  pooling: str = "topk"
  topk_fraction: float = 0.01
  mad_floor: float = anomaly.MAD_FLOOR
  border: int = 0

  @classmethod
  def of(cls, values) -> Pooling:
    """From config.anomaly or a model's info (a run recorded before mad_floor and border existed: their old values)."""
    get = values.get
    return cls(
      values["pooling"], float(values["topk_fraction"]), float(get("mad_floor", anomaly.MAD_FLOOR)), int(get("border", 0))
    )

  def score(self, m: np.ndarray) -> float:
    return anomaly.image_score(m, **dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Localization:
  """The localization map's settings (anomaly.localization_map): config.anomaly's localization_* fields. darkness
  0: the image map localizes."""

  darkness: float = 0.0
  sigma: float = 1.0
  zscore: float = 0.0
  background: float = 0.0

  @classmethod
  def of(cls, values) -> Localization:
    """From config.anomaly or a model's info (fields absent from an older run's info: the values of that time)."""
    return cls(*(float(values.get(f"localization_{f.name}", f.default)) for f in dataclasses.fields(cls)))

  def info(self) -> dict[str, float]:
    """As metrics.json's "model" section records it."""
    return {f"localization_{k}": v for k, v in dataclasses.asdict(self).items()}

  def apply(self, m: np.ndarray, img: np.ndarray) -> np.ndarray:
    """An image's map [H, W] -> its localization map, given the image (uint8 [H, W, 3]), host side."""
    return anomaly.localization_map(m, img, self.darkness, self.sigma, self.zscore, self.background)


@dataclasses.dataclass(frozen=True, eq=False)
class Scorer:
  """A trained model of any kind, as evaluation needs it (see the module docstring): built whole by its kind's
  factory (`build`), never changed afterwards. The caches hold compiled functions and device copies only."""

  maps: Callable  # jitted (params, x [B, H, W, 3], key, ids [B]) -> [B, H, W]
  params: Any
  multiple: int  # input sides must be divisible by this
  flops_per_image: Callable[[tuple], float]  # padded batch shape -> flops per image (called once, at a small shape)
  info: Mapping[str, Any]  # metrics.json's "model" section: kind, params, description, pooling, localization, ...
  pooling: Pooling = dataclasses.field(init=False)
  localization: Localization = dataclasses.field(init=False)
  compiled: dict = dataclasses.field(default_factory=dict, repr=False)  # batch shape -> (executable, devices, flops)
  replicated: dict = dataclasses.field(default_factory=dict, init=False, repr=False)  # devices -> params on each
  _per_pixel: list = dataclasses.field(default_factory=list, init=False, repr=False)

  def __post_init__(self):
    object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
    object.__setattr__(self, "pooling", Pooling.of(self.info))
    object.__setattr__(self, "localization", Localization.of(self.info))

  def score(self, m: np.ndarray) -> float:
    return self.pooling.score(m)

  def localize(self, m: np.ndarray, img: np.ndarray) -> np.ndarray:
    return self.localization.apply(m, img)

  def image_flops(self, shape: tuple) -> float:
    """FLOPs per image of a padded batch `shape`: every kind's map is convolutional, so its cost is linear in the
    pixels; measured once per scorer at a small reference shape (no compilation per bucket)."""
    if not self._per_pixel:
      side = self.multiple * max(1, -(-64 // self.multiple))
      self._per_pixel.append(self.flops_per_image((1, side, side, 3)) / side**2)
    return self._per_pixel[0] * shape[1] * shape[2]


def build(maps: Callable, params, multiple: int, flops_per_image: Callable, info: dict, config) -> Scorer:
  """A kind's Scorer: its localization map config.anomaly's, its pooling config.anomaly's unless `info` brings one
  of its own (a student pools as its teacher did)."""
  a = config.anomaly
  pooling = {k: a[k] for k in ("pooling", "topk_fraction", "mad_floor", "border")}
  return Scorer(maps, params, multiple, flops_per_image, {**pooling, **info, **Localization.of(a).info()})


@dataclasses.dataclass(frozen=True)
class Tiling:
  max_side: int = 768  # images with a longer side are tiled (pixels after resizing)
  size: int = 384  # tile side
  overlap: int = 48  # pixels of context on each inner side of a tile, cut away when pasting


def tiling(config) -> Tiling:
  e = config.eval
  return Tiling(max_side=e.tile_max_side, size=e.tile_size, overlap=e.tile_overlap)


def micro_batched(maps: Callable, micro_batch: int) -> Callable:
  """`maps` (the Scorer contract) computed `micro_batch` images at a time in a loop (jax.lax.map), the same maps:
  every image's noise comes from its own id and no layer mixes the images of a batch. On a CPU the activations of
  a few images stay in cache where those of a whole eval batch do not (docs/benchmark.md). 0: one pass."""
  if not micro_batch:
    return maps

  def run(params, x, key, ids):
    if not isinstance(x.shape[0], int) or x.shape[0] <= micro_batch:  # a symbolic batch (jax.export): one pass
      return maps(params, x, key, ids)
    return jax.lax.map(lambda a: maps(params, a[0][None], key, a[1][None])[0], (x, ids), batch_size=micro_batch)

  return run


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


def compiled_flops(compiled) -> float:
  """XLA's flop count of a compiled function (NaN where the backend gives none). Loop bodies count once."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and "flops" in cost else float("nan")


def flops_of(fn: Callable, *args) -> float:
  return compiled_flops(jax.jit(fn).lower(*args).compile())


def bucket_side(n: int, multiple: int) -> int:
  """The smallest size of the ladder 16, 24, 32, 48, 64, 96, ... (each rounded up to `multiple`) that is >= n."""
  v = 16
  while True:
    for c in (v, v * 3 // 2):
      c = -(-c // multiple) * multiple
      if c >= n:
        return c
    v *= 2


def pad_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
  """[H, W, C] -> [h, w, C], mirrored at the bottom and right (repeatedly, for pads larger than the image)."""
  ph, pw = h - x.shape[0], w - x.shape[1]
  if ph == 0 and pw == 0:
    return x
  return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


def _starts(n: int, size: int, stride: int) -> list[int]:
  """Tile starts 0, stride, 2 stride, ... until a tile reaches the end (the image is padded to the last tile)."""
  return list(range(0, max(n - size, 0) + stride, stride)) if n > size else [0]


def _keep(start: int, size: int, n: int, overlap: int) -> tuple[int, int]:
  """The rows [a, b) of a tile starting at `start` that are pasted: all but `overlap` at inner borders."""
  a = start + (overlap if start > 0 else 0)
  b = min(n, start + size - (overlap if start + size < n else 0))
  return a, b


@dataclasses.dataclass
class _Piece:
  image: object  # the caller's tag of the image
  image_id: int  # its noise id
  x: np.ndarray  # float32 [h, w, 3] padded input
  place: tuple  # (dst rows, dst cols, src rows, src cols) slices into the image map / the piece map
  piece_id: int


def pieces(tag, image_id: int, img: np.ndarray, multiple: int, tile: Tiling) -> list[_Piece]:
  """Whole image (padded to its bucket) or overlapping tiles; uint8 [H, W, 3] -> inputs in [-1, 1]."""
  h, w = img.shape[:2]
  x = img.astype(np.float32) / 127.5 - 1.0
  if max(h, w) <= tile.max_side:
    hb, wb = bucket_side(h, multiple), bucket_side(w, multiple)
    return [_Piece(tag, image_id, pad_to(x, hb, wb), (slice(0, h), slice(0, w), slice(0, h), slice(0, w)), 0)]
  size = -(-tile.size // multiple) * multiple
  # Starts on multiples of the model's down-sampling, so every tile sees the same pixel grid as the whole image.
  stride = (size - 2 * tile.overlap) // multiple * multiple
  if stride <= 0:
    raise ValueError(f"config.eval.tile_overlap={tile.overlap} leaves no tile interior in eval.tile_size={tile.size}")
  ys, xs = _starts(h, size, stride), _starts(w, size, stride)
  xp = pad_to(x, ys[-1] + size, xs[-1] + size)
  out = []
  for y0 in ys:
    ya, yb = _keep(y0, size, h, tile.overlap)
    for x0 in xs:
      xa, xb = _keep(x0, size, w, tile.overlap)
      place = (slice(ya, yb), slice(xa, xb), slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
      out.append(_Piece(tag, image_id, xp[y0 : y0 + size, x0 : x0 + size], place, len(out)))
  return out


@dataclasses.dataclass
class Stats:
  seconds: float = 0.0  # the devices' time on the batches (dispatch or the batch before done, to done), no compilation
  compile_seconds: float = 0.0
  flops: float = 0.0  # the model's flops on the real rows of every batch run (padding rows left out)
  images: int = 0

  @property
  def flops_per_image(self) -> float:
    return self.flops / self.images if self.images else float("nan")


def spread(batch_size: int) -> Mesh | None:
  """The mesh of this process's devices an evaluation batch is split over (one slice of rows per device, run side
  by side: one XLA CPU device keeps about 1.3 cores busy, docs/benchmark.md): the most devices that divide the
  batch, or None where that is one."""
  devices = jax.local_devices()
  n = max(k for k in range(1, len(devices) + 1) if batch_size % k == 0)
  return None if n == 1 else Mesh(np.asarray(devices[:n]), ("data",))


def params_on(scorer: Scorer, devices: int):
  """The scorer's parameters for a mesh of `devices` (0: one device, as they are): replicated once per scorer."""
  if not devices:
    return scorer.params
  if devices not in scorer.replicated:
    mesh = Mesh(np.asarray(jax.local_devices()[:devices]), ("data",))
    scorer.replicated[devices] = jax.device_put(scorer.params, NamedSharding(mesh, P()))
  return scorer.replicated[devices]


def compile_maps(scorer: Scorer, x: np.ndarray, key: jax.Array, ids: np.ndarray) -> tuple:
  """(executable, devices, flops per image) for a batch of x's shape, compiled once per shape and kept in
  scorer.compiled (which a Scorer of other parameters for the same maps may share: `with_params`).

  executable(params, x, key, ids) -> maps [B, H, W]. Where several local devices divide the batch, the scorer's
  maps run under shard_map, each device on its slice of rows, the parameters replicated on each: every row's noise
  comes from its own id and no layer mixes rows, so the maps are those of one device."""
  shape = x.shape
  if shape not in scorer.compiled:
    mesh = spread(shape[0])
    fn, devices = scorer.maps, 0
    if mesh is not None:
      rows = P("data")
      # no collectives inside, so the per-device types need no checking (a scan's zero carry is not "varying")
      spec = {"in_specs": (P(), rows, P(), rows), "out_specs": rows, "check_vma": False}
      fn, devices = jax.jit(jax.shard_map(scorer.maps, mesh=mesh, **spec)), mesh.devices.size
    executable = fn.lower(params_on(scorer, devices), jnp.asarray(x), key, jnp.asarray(ids)).compile()
    scorer.compiled[shape] = (executable, devices, scorer.image_flops(shape))
  return scorer.compiled[shape]


def with_params(scorer: Scorer, params) -> Scorer:
  """The same maps with other parameters of the same shapes (a checkpoint under training), sharing the compiled
  functions: nothing is compiled again."""
  return dataclasses.replace(scorer, params=params, compiled=scorer.compiled)


def _dispatch(scorer: Scorer, batch: list[_Piece], batch_size: int, key, stats: Stats):
  """Starts the batch on the devices (padded to `batch_size` rows; rows past the real ones stay zero, so a bucket
  keeps one shape); returns its maps still on the devices. The shape must be compiled (compile_maps)."""
  x = np.zeros((batch_size, *batch[0].x.shape), np.float32)
  ids = np.zeros(batch_size, np.int32)
  for j, p in enumerate(batch):
    x[j] = p.x
    ids[j] = (p.image_id * 1_000_003 + p.piece_id) % 2**31
  executable, devices, flops = scorer.compiled[x.shape]
  stats.flops += flops * len(batch)
  return executable(params_on(scorer, devices), x, key, ids)


def last_batch(n: int, batch_size: int) -> int:
  """The padded size of a shape's last batch of n < batch_size pieces: the next power of two, a multiple of the
  local devices (so that it is split like a full one), at most batch_size. A mixed folder puts one or two photos
  in most size buckets; padding each to a full batch computed up to 16x the rows needed (the benchmark's mixed
  folder: 3% of the matmul peak), where a smaller shape costs one compilation more."""
  rows, devices = 1, len(jax.local_devices())
  while rows < n:
    rows *= 2
  rows = -(-rows // devices) * devices
  return min(rows, batch_size)


def iter_maps(
  scorer: Scorer, items: Iterable[tuple], key: jax.Array, *, batch_size: int, tile: Tiling, stats: Stats | None = None
) -> Iterator[tuple[object, np.ndarray, float]]:
  """Streams (tag, localization map [H, W], image score) for items (tag, noise id, uint8 image [H, W, 3] of any
  size), each as soon as its map is done.

  Pieces wait in one queue per padded shape until a batch is full, so memory holds at most one batch per shape
  (and the images whose pieces are in flight); results come in completion order, not input order. A full batch
  is dispatched before the one ahead of it is pulled to the host, so the devices work on the next batch while
  the host pastes, localizes and pools the last (a new shape compiles with nothing in flight)."""
  stats = stats if stats is not None else Stats()
  queues: dict[tuple, list[_Piece]] = {}
  todo: dict[int, list] = {}  # image -> [map, pieces left, image]
  inflight: collections.deque = collections.deque()  # (pieces, maps on the devices, dispatch time)
  last = [0.0]  # when the devices last finished a batch: each batch's model time starts there or at its dispatch

  def complete():
    batch, out, t0 = inflight.popleft()
    out = np.asarray(jax.device_get(out))
    now = time.time()
    stats.seconds += now - max(t0, last[0])
    last[0] = now
    for j, p in enumerate(batch):
      entry = todo[p.image]
      dst_r, dst_c, src_r, src_c = p.place
      entry[0][dst_r, dst_c] = out[j][src_r, src_c]
      entry[1] -= 1
      if entry[1] == 0:
        m, _, img = todo.pop(p.image)
        stats.images += 1
        yield p.image, scorer.localize(m, img), scorer.score(m)

  def dispatch(shape, rows: int = batch_size):
    batch = queues.pop(shape)
    full = (rows, *shape)
    if full not in scorer.compiled:
      while inflight:
        yield from complete()
      t0 = time.time()
      compile_maps(scorer, np.zeros(full, np.float32), key, np.zeros(rows, np.int32))
      stats.compile_seconds += time.time() - t0
    inflight.append((batch, _dispatch(scorer, batch, rows, key, stats), time.time()))
    if len(inflight) > 1:
      yield from complete()

  for tag, image_id, img in items:
    ps = pieces(tag, image_id, img, scorer.multiple, tile)
    todo[tag] = [np.zeros(img.shape[:2], np.float32), len(ps), img]
    for p in ps:
      queues.setdefault(p.x.shape, []).append(p)
      if len(queues[p.x.shape]) == batch_size:
        yield from dispatch(p.x.shape)
  for shape in list(queues):  # the last, part-filled batch of each shape, run at a smaller padded size
    yield from dispatch(shape, last_batch(len(queues[shape]), batch_size))
  while inflight:
    yield from complete()


_DONE = object()


def prefetch(iterable: Iterable, depth: int = 2) -> Iterator:
  """The items of `iterable` in order, produced by a background thread up to `depth` ahead, so that decoding the next
  photos overlaps the model's work on the current batch. An exception raised while producing an item is raised
  here, where that item would have come; leaving early stops the thread (it blocks at most one put)."""
  q: queue.Queue = queue.Queue(maxsize=max(1, depth))
  stop = threading.Event()

  def produce():
    try:
      for item in iterable:
        if stop.is_set():
          return
        q.put((item, None))
      q.put((_DONE, None))
    except BaseException as e:  # handed over, raised in the consumer
      q.put((_DONE, e))

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while True:
      item, error = q.get()
      if item is _DONE:
        if error is not None:
          raise error
        return
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # unblock a producer waiting on a full queue
      try:
        q.get_nowait()
      except queue.Empty:
        thread.join(0.05)


@dataclasses.dataclass
class MapResult:
  scores: np.ndarray  # [N]
  maps: list  # localization maps [H, W], at the image's own size; None where compute_maps was told not to keep it
  seconds: float  # wall time of the model, compilation excluded
  compile_seconds: float
  flops_per_image: float
  sample: np.ndarray | None = None  # every SAMPLE_STRIDE-th pixel of every map, where not all maps are kept


SAMPLE_STRIDE = 61  # a prime, so the sample does not line up with image rows


def compute_maps(
  scorer: Scorer,
  images: Sequence[np.ndarray],
  key: jax.Array,
  *,
  batch_size: int,
  tile: Tiling = Tiling(),
  desc: str = "",
  keep: np.ndarray | None = None,
  ids: Sequence[int] | None = None,
) -> MapResult:
  """Localization maps and image scores of uint8 images [H, W, 3] (any sizes), with progress every 20 s.

  keep: bool [N], the maps to hold in memory (default all); the others are dropped as soon as they are scored,
  leaving a pixel sample for colour scales. ids: each image's noise id (default its index), so that an image
  rescored alone gets the map it got among the others."""
  n = len(images)
  scores = np.zeros(n, np.float32)
  maps: list = [None] * n
  sample = None if keep is None else []
  stats = Stats()
  t_log = time.time()
  ids = range(n) if ids is None else ids
  items = prefetch((i, ids[i], img) for i, img in enumerate(images))  # a streamed split decodes ahead
  for done, (i, m, s) in enumerate(iter_maps(scorer, items, key, batch_size=batch_size, tile=tile, stats=stats), 1):
    scores[i] = s
    if keep is None or keep[i]:
      maps[i] = m
    if sample is not None:
      sample.append(m.ravel()[::SAMPLE_STRIDE])
    if time.time() - t_log > 20 or done == n:
      rate = done / max(stats.seconds + stats.compile_seconds, 1e-9)
      log.info("scoring %s: %d/%d images, %.2f images/s, ETA %.0f s", desc, done, n, rate, (n - done) / max(rate, 1e-9))
      t_log = time.time()
  if sample is not None:
    sample = np.concatenate(sample) if sample else np.zeros(0, np.float32)
  return MapResult(scores, maps, stats.seconds, stats.compile_seconds, stats.flops_per_image, sample)


def fill_maps(scorer: Scorer, images: Sequence[np.ndarray], res: MapResult, wanted, key: jax.Array, **kw) -> None:
  """Rescores the images in `wanted` whose maps res dropped (same noise ids, so the same maps) and puts them in res."""
  missing = sorted({int(i) for i in wanted if res.maps[int(i)] is None})
  if missing:
    again = compute_maps(scorer, [images[i] for i in missing], key, ids=missing, desc="figures", **kw)
    for i, m in zip(missing, again.maps):
      res.maps[i] = m


def cache_key(scorer: Scorer, info: dict, resize: float, seed: int, names: Sequence[str]) -> str:
  """A 12-hex-digit key for what `scorer` computes over the photos `names`: the settings `info`, its weights (the
  same settings trained again are another model), the resize factor and the seed."""
  h = hashlib.sha256(json.dumps([info, resize, seed, list(names)], sort_keys=True, default=str).encode())
  for leaf in jax.tree.leaves(scorer.params):
    h.update(np.ascontiguousarray(jax.device_get(leaf)).tobytes())
  return h.hexdigest()[:12]


def sharded_cache(
  cache: str, names: Sequence[str], shard: int, compute: Callable[[int, int, int], tuple[dict, list]], read: Callable
) -> list:
  """Per-item results for `names`, computed in shards of `shard` items and kept as <cache>/shard_<k>.npz beside the
  names they belong to, so that a killed run keeps its finished shards; a shard of other names or refused by `read`
  is computed again (and logged), an unreadable (damaged) one moved aside first (crackjax.files.set_aside).
  compute(lo, hi, k) -> (arrays to save, the items' results); read(npz, n) -> the n items' results from a saved
  shard, or None to refuse it."""
  os.makedirs(cache, exist_ok=True)
  out: list = []
  for k in range((len(names) + shard - 1) // shard):
    lo, hi = k * shard, min(len(names), (k + 1) * shard)
    path = os.path.join(cache, f"shard_{k:04d}.npz")
    if os.path.exists(path):
      try:
        with np.load(path) as z:
          got = read(z, hi - lo) if list(z["names"]) == list(names[lo:hi]) else None
        if got is not None:
          out += got
          continue
        log.warning("%s was computed for other images; recomputing it", path)
      except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        files.set_aside(path, "cached shard", f"{type(e).__name__}: {e}; computing it again")
    arrays, results = compute(lo, hi, k)
    tmp = path + ".tmp.npz"
    np.savez(tmp, names=np.array(names[lo:hi]), **arrays)
    os.replace(tmp, path)  # a shard is either complete or absent
    out += results
  return out
