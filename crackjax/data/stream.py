"""Streamed training data (`data.stream = True`): crops read from the array_record data source by grain, for data
sets that do not fit in host memory (a fleet's archive, the 40,000-image public concrete sets).

    source   builder.as_data_source('train'): random access to the prepared records, decoded on access
    sampler  grain.IndexSampler: shuffled by config.seed, endless, sharded by JAX process (each process reads its
             own share of the records)
    ops      decode + resize + a random crop with flips and 90-degree rotations (grain's per-record RNG, derived
             from the seed), then this process's share of the global batch
    workers  data.stream_workers decoding processes (0: in the training process)

The iterator's position is saved with every checkpoint (orbax item 'data', grain's own checkpoint handler), so a
resumed run sees the stream it would have seen. Host memory holds the workers' prefetch buffers and one batch,
not the data set (docs/benchmark.md).
"""

from __future__ import annotations

import dataclasses

import grain.python as grain
import jax
import numpy as np
from absl import flags

from crackjax.data import pipeline
from crackjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class RandomCrop(grain.RandomMapTransform):
  """A decoded record -> float32 [crop, crop, 3] in [-1, 1], at the working resolution."""

  crop_size: int
  resize: float

  def random_map(self, element, rng: np.random.Generator):
    img = pipeline.resize_image(np.asarray(element["image"]), self.resize)
    return pipeline.to_model_range(pipeline.random_crop(img, self.crop_size, rng))


def train_loader(source, *, batch_size: int, crop_size: int, resize: float, seed: int, workers: int) -> grain.DataLoader:
  """An endless loader of this process's rows of each global batch (float32 [B / processes, crop, crop, 3])."""
  n = jax.process_count()
  if batch_size % n:
    raise UserError(f"config.train.batch_size={batch_size} must be divisible by the {n} processes")
  sampler = grain.IndexSampler(
    num_records=len(source),
    shard_options=grain.ShardByJaxProcess(drop_remainder=True),
    shuffle=True,
    num_epochs=None,
    seed=seed,
  )
  ops = [RandomCrop(crop_size=crop_size, resize=resize), grain.Batch(batch_size // n, drop_remainder=True)]
  if workers and not flags.FLAGS.is_parsed():  # grain's workers read absl flags; main.py parses them, a notebook not
    flags.FLAGS.mark_as_parsed()
  return grain.DataLoader(data_source=source, sampler=sampler, operations=ops, worker_count=workers)


def save_args(iterator):
  return grain.PyGrainCheckpointSave(iterator)


def restore_args(iterator):
  return grain.PyGrainCheckpointRestore(iterator)
