"""The host-side input pipeline: decoded splits in memory and random training crops (scoring whole images of any
size, in buckets and tiles, is crackjax/scorer.py).

Splits are read once from the array_record data source, resized by `resize` (area averaging when shrinking, so
thin cracks fade instead of vanishing) and kept as uint8 arrays: concrete data sets are small, and crops are then
NumPy slices. With data.stream a split's images are decoded as they are scored instead (LazyImages). Training
batches are a pure function of (seed, step): a resumed run sees the same stream.
Pixels map to [-1, 1] as x = u8 / 127.5 - 1.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from crackjax import streams
from crackjax.errors import UserError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Split:
  """A split. images: uint8 [H, W, 3] each (sizes may differ); masks: uint8 {0,1} [H, W] each; in memory (lists)
  or decoded when indexed (LazyImages, a streamed evaluation)."""

  images: Sequence[np.ndarray]
  masks: Sequence[np.ndarray]
  has_mask: np.ndarray  # bool [N]
  labels: np.ndarray  # int [N]: 0 good, 1 anomalous, -1 unknown
  filenames: list[str]

  def __len__(self) -> int:
    return len(self.images)


def resize_image(img: np.ndarray, factor: float) -> np.ndarray:
  if factor == 1.0:
    return img
  h, w = img.shape[:2]
  size = (max(1, round(w * factor)), max(1, round(h * factor)))
  resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC
  return np.asarray(Image.fromarray(img).resize(size, resample))


def resize_mask(mask: np.ndarray, factor: float) -> np.ndarray:
  if factor == 1.0:
    return mask
  soft = resize_image((mask * 255).astype(np.uint8), factor)
  return (soft > 63).astype(np.uint8)  # a pixel a quarter covered by crack stays crack


class LazyImages(Sequence):
  """Images (or masks) of a split decoded when indexed, never all at once: a streamed evaluation's split.

  source: a data source whose records still hold the field's encoded bytes; order: record index of each item."""

  def __init__(self, source, order: list[int], field: str, resize: float):
    self.source, self.order, self.field, self.resize = source, order, field, resize

  def __len__(self) -> int:
    return len(self.order)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    e = self.source[self.order[i]]
    if self.field == "mask":
      return resize_mask(e["mask"][..., 0], self.resize)
    return resize_image(e["image"], self.resize)


_SKIP_PIXELS = {"image": tfds.decode.SkipDecoding(), "mask": tfds.decode.SkipDecoding()}


def _filename(record) -> str:
  fn = record["filename"]
  return fn.decode() if isinstance(fn, bytes) else str(fn)


def _check_split(builder, split: str) -> None:
  if split not in builder.info.splits:
    raise KeyError(f"split {split!r} not in {builder.info.full_name} (has {sorted(builder.info.splits)})")


def load_split(builder, split: str, *, resize: float, max_images: int = 0, stream: bool = False) -> Split:
  """Reads `split` of a prepared builder (all of it, or the first max_images).

  stream=False: every image and mask decoded into memory. stream=True: only labels and file names are read here;
  images and masks are decoded when indexed (LazyImages), so host memory does not grow with the split."""
  _check_split(builder, split)
  meta = builder.as_data_source(split=split, decoders=_SKIP_PIXELS)  # labels and names without decoding pixels
  rows = []
  for i in range(len(meta)):
    e = meta[i]
    rows.append((_filename(e), i, int(e["label"]), bool(e["has_mask"])))
  # Sorted by filename, so that max_images keeps the same images whatever order the records are in.
  rows.sort()
  n = len(rows) if max_images <= 0 else min(max_images, len(rows))
  if max_images > 0:
    # Keep both classes when truncating: alternate good and anomalous.
    good = [r for r in rows if r[2] != 1]
    bad = [r for r in rows if r[2] == 1]
    rows = ([r for pair in zip(good, bad) for r in pair] + good[len(bad) :] + bad[len(good) :])[:n]
  order = [r[1] for r in rows]
  out = Split([], [], np.array([r[3] for r in rows], bool), np.array([r[2] for r in rows], np.int64), [r[0] for r in rows])
  if stream:
    out.images = LazyImages(builder.as_data_source(split=split, decoders={"mask": _SKIP_PIXELS["mask"]}), order, "image", resize)
    out.masks = LazyImages(builder.as_data_source(split=split, decoders={"image": _SKIP_PIXELS["image"]}), order, "mask", resize)
    log.info("Streaming %d images of split %r (resize %.3g): decoded as they are scored", n, split, resize)
    return out
  source = builder.as_data_source(split=split)
  for i in order:
    e = source[i]
    out.images.append(resize_image(e["image"], resize))
    out.masks.append(resize_mask(e["mask"][..., 0], resize))
  log.info("Loaded %d images of split %r (resize %.3g)", n, split, resize)
  return out


def load_images(builder, split: str, *, resize: float) -> tuple[list[np.ndarray], list[str]]:
  """Pixels and file names of `split`, sorted by name, and nothing else: the student's pool goes through here so
  that no label, mask or defect field is ever read for training."""
  _check_split(builder, split)
  source = builder.as_data_source(split=split)
  rows = []
  for i in range(len(source)):
    e = source[i]
    rows.append((_filename(e), e["image"]))
  rows.sort(key=lambda r: r[0])
  log.info("Loaded %d images of split %r, pixels only (resize %.3g)", len(rows), split, resize)
  return [resize_image(img, resize) for _, img in rows], [fn for fn, _ in rows]


def to_model_range(u8: np.ndarray) -> np.ndarray:
  return u8.astype(np.float32) / 127.5 - 1.0


def random_crop(img: np.ndarray, crop_size: int, rng: np.random.Generator) -> np.ndarray:
  """One random crop of [H, W, C] (reflect-padded when smaller), randomly flipped and rotated by 90-degree steps."""
  h, w = img.shape[:2]
  if h < crop_size or w < crop_size:
    img = np.pad(img, ((0, max(0, crop_size - h)), (0, max(0, crop_size - w)), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
  y, x = rng.integers(0, h - crop_size + 1), rng.integers(0, w - crop_size + 1)
  crop = img[y : y + crop_size, x : x + crop_size]
  if rng.random() < 0.5:
    crop = crop[:, ::-1]
  return np.rot90(crop, k=int(rng.integers(4)))


def random_crop_batch(images: list[np.ndarray], *, batch_size: int, crop_size: int, rng: np.random.Generator) -> np.ndarray:
  """batch_size random crops with random flips and 90-degree rotations: float32 [B, crop, crop, 3] in [-1, 1]."""
  out = np.empty((batch_size, crop_size, crop_size, 3), np.float32)
  for b in range(batch_size):
    out[b] = to_model_range(random_crop(images[rng.integers(len(images))], crop_size, rng))
  return out


def train_batches(
  images: list[np.ndarray], *, batch_size: int, crop_size: int, seed: int, start_step: int
) -> Iterator[np.ndarray]:
  """Infinite stream of training batches; batch `step` depends on (seed, step) only (the 'crops' stream)."""
  if not images:
    raise UserError("no training images (the train split is empty)")
  step = start_step
  while True:
    yield random_crop_batch(images, batch_size=batch_size, crop_size=crop_size, rng=streams.rng(seed, "crops", step))
    step += 1
