"""Device harness (not part of crackjax): runs main.py on a machine without TensorFlow / TFDS.

The GPU machine's image has jax but neither TensorFlow nor TFDS, and their wheels exceed what a call may carry.
crackjax prepares MVTec folders through a TFDS builder; here the same folder scan and example generation
(crackjax.data.builders.scan_root and AnomalyFolder._generate_examples) fill an in-memory builder instead, and
clu's TensorBoard writer (which imports TensorFlow) writes nothing. Everything else is crackjax's own code.
"""

import collections
import runpy
import sys
import types

import numpy as np

sys.modules["tensorflow"] = None  # absent there: fail fast if anything still reaches for it


class _Any:
  def __init__(self, *a, **k):
    pass


tfds = types.ModuleType("tensorflow_datasets")
tfds.core = types.SimpleNamespace(BuilderConfig=_Any, GeneratorBasedBuilder=_Any, Version=_Any, MetadataDict=dict)
tfds.decode = types.SimpleNamespace(SkipDecoding=_Any)
tfds.features = types.SimpleNamespace(FeaturesDict=_Any, Image=_Any, Text=_Any)
sys.modules["tensorflow_datasets"] = tfds

grain = types.ModuleType("grain")  # streamed data only (data.stream), unused here
grain.python = types.ModuleType("grain.python")
grain.python.__getattr__ = lambda name: _Any
sys.modules["grain"], sys.modules["grain.python"] = grain, grain.python

sw = types.ModuleType("clu.metric_writers.summary_writer")


class SummaryWriter:
  def __init__(self, *a, **k):
    pass

  def __getattr__(self, name):
    return lambda *a, **k: None


sw.SummaryWriter = SummaryWriter
sys.modules["clu.metric_writers.summary_writer"] = sw

from crackjax.data import builders  # noqa: E402

_CACHE = {}


class FolderBuilder:
  def __init__(self, root, val_fraction):
    self.builder_config = types.SimpleNamespace(root=root)
    self._splits = builders.scan_root(root, val_fraction)
    self._skipped = collections.defaultdict(list)
    self._notes = collections.defaultdict(list)
    self.info = types.SimpleNamespace(metadata={}, full_name=f"folder:{root}")
    self.records = {}
    self.info.splits = {k: types.SimpleNamespace(num_examples=len(v)) for k, v in self._splits.items()}

  def _decode(self, split):  # on first use: an evaluation never decodes train/good
    recs = []
    for _, ex in builders.AnomalyFolder._generate_examples(self, split):
      ex = dict(ex)
      ex["image"] = np.asarray(ex["image"], np.uint8)
      ex["mask"] = np.asarray(ex["mask"], np.uint8)[..., None]
      recs.append(ex)
    print(f"[harness] {self.builder_config.root} {split}: {len(recs)} images", flush=True)
    return recs

  def as_data_source(self, split, decoders=None):
    if split not in self.records:
      self.records[split] = self._decode(split)
    return self.records[split]


def make_builder(*, root, data_dir, val_fraction, synthetic_cfg=None):
  if not root:
    raise SystemExit("[harness] synthetic data not supported here")
  key = (root, val_fraction)
  if key not in _CACHE:
    _CACHE[key] = FolderBuilder(root, val_fraction)
  return _CACHE[key]


builders.make_builder = make_builder
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path("main.py", run_name="__main__")
