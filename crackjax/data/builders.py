"""TFDS builders, written as array_record and read back with random access (`builder.as_data_source`).

`anomaly_folder` reads an MVTec-layout root (the manual dir):

    train/good/*   val/{good,<defect>}/*   unlabeled/*   test/{good,<defect>}/*
    ground_truth/<defect>/<stem>_mask.png   (white = anomalous)

Splits: 'train' (train/good), 'val', 'test', 'unlabeled', each only where the root has at least one readable
image (an empty split is never written). A root without val/ gets one held out of train/good (every image whose
name hashes below `val_fraction`, and at least one), so a threshold can always be chosen without the test set.
Unreadable files are skipped; they and every mask problem (a mask of another size, a mask file that matches no
image) are listed once per process in a warning and kept per split in the dataset metadata ('skipped_files',
'notes'). The config name hashes the root path and its file list (names, sizes, mtimes), so a changed folder is
prepared again instead of read stale.

`synthetic_concrete` draws its splits from `synthetic.generate`; it needs no files at all.

Every example: image uint8 [H, W, 3], mask uint8 [H, W, 1] in {0, 1} (zeros where there is none), has_mask,
label (0 good, 1 anomalous, -1 unknown), defect (folder name), filename (relative to the root).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds

from crackjax.data import decode, synthetic
from crackjax.errors import UserError

log = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
  "expected an MVTec-style layout: ROOT/train/good/*.png|jpg, optional ROOT/val/{good,crack}/*, "
  "ROOT/test/{good,<defect>}/*, ROOT/unlabeled/*, ROOT/ground_truth/<defect>/<stem>_mask.png"
)


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict(
    {
      "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
      "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
      "has_mask": np.bool_,
      "label": np.int64,
      "defect": tfds.features.Text(),
      "filename": tfds.features.Text(),
    }
  )


def _example(image: np.ndarray, mask: np.ndarray | None, label: int, defect: str, filename: str) -> dict:
  from PIL import Image  # the features take PIL images, so TFDS encodes without TensorFlow

  has_mask = mask is not None
  mask = np.zeros(image.shape[:2], np.uint8) if mask is None else mask
  return {
    "image": Image.fromarray(image),
    "mask": Image.fromarray(mask),  # mode L: decoded as [H, W, 1]
    "has_mask": has_mask,
    "label": label,
    "defect": defect,
    "filename": filename,
  }


# ---------------------------------------------------------------------------------------------- folder layout


def list_images(folder: str) -> list[str]:
  if not os.path.isdir(folder):
    return []
  return sorted(os.path.join(folder, f) for f in os.listdir(folder) if decode.is_image_file(f) and not f.startswith("."))


def _class_dirs(root: str, split: str) -> list[str]:
  d = os.path.join(root, split)
  if not os.path.isdir(d):
    return []
  # 'good' first, then defects alphabetically.
  names = sorted(n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)))
  return sorted(names, key=lambda n: n != "good")


def _held_out(name: str, fraction: float) -> bool:
  return (zlib.crc32(os.path.basename(name).encode()) % 10_000) < fraction * 10_000


def scan_root(root: str, val_fraction: float) -> dict[str, list[tuple[str, int, str]]]:
  """Lists (path, label, defect) per split. Raises FileNotFoundError naming the path and the layout."""
  if not os.path.isdir(root):
    raise UserError(f"data root {root!r} does not exist or is not a folder; {EXPECTED_LAYOUT}")
  splits: dict[str, list[tuple[str, int, str]]] = {}
  train = [(p, 0, "good") for p in list_images(os.path.join(root, "train", "good"))]
  for split in ("val", "test"):
    items = []
    for cls in _class_dirs(root, split):
      items += [(p, 0 if cls == "good" else 1, cls) for p in list_images(os.path.join(root, split, cls))]
    if items:
      splits[split] = items
  if train and "val" not in splits and val_fraction > 0:
    if len(train) < 2:
      raise UserError(
        f"{os.path.join(root, 'train', 'good')} has {len(train)} image: too few to hold any out as val for the "
        "threshold; add images, or a ROOT/val/ folder"
      )
    held = [x for x in train if _held_out(x[0], val_fraction)]
    if not held:  # few images, none hashed below the fraction: hold out the one that hashes lowest
      held = [min(train, key=lambda x: zlib.crc32(os.path.basename(x[0]).encode()))]
    splits["val"] = held
    train = [x for x in train if x not in held]
  if train:
    splits["train"] = train
  unlabeled = [(p, -1, "unknown") for p in list_images(os.path.join(root, "unlabeled"))]
  if unlabeled:
    splits["unlabeled"] = unlabeled
  if "train" not in splits and "test" not in splits:
    raise UserError(f"no images under {os.path.join(root, 'train', 'good')} or {os.path.join(root, 'test')}; {EXPECTED_LAYOUT}")
  return splits


def fingerprint(root: str) -> str:
  h = hashlib.sha256(os.path.abspath(root).encode())
  for dirpath, dirnames, filenames in sorted(os.walk(root)):
    dirnames.sort()
    for f in sorted(filenames):
      st = os.stat(os.path.join(dirpath, f))
      h.update(f"{os.path.relpath(os.path.join(dirpath, f), root)}:{st.st_size}:{st.st_mtime_ns}".encode())
  return h.hexdigest()[:12]


@dataclasses.dataclass(kw_only=True)
class FolderConfig(tfds.core.BuilderConfig):
  root: str = ""
  val_fraction: float = 0.1


class AnomalyFolder(tfds.core.GeneratorBasedBuilder):
  """An MVTec-layout folder of images (see the module docstring)."""

  VERSION = tfds.core.Version("1.2.0")  # 1.1.0: skipped files and notes per split, no empty split; 1.2.0: EXIF upright
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass the MVTec-layout root as the manual dir; " + EXPECTED_LAYOUT

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=_features(), metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    root = self.builder_config.root
    splits = scan_root(root, self.builder_config.val_fraction)
    log.info("Reading %s: %s files", root, {k: len(v) for k, v in splits.items()})
    self._skipped: dict[str, list[str]] = {k: [] for k in splits}
    self._notes: dict[str, list[str]] = {k: [] for k in splits}
    self._splits = {}
    for split, items in splits.items():
      first = self._first_readable(split, items)
      if first is None:
        folder = os.path.join(root, "train", "good") if split == "train" else os.path.join(root, split)
        if split == "train":
          raise UserError(
            f"no readable image in {folder}: {'; '.join(self._skipped[split][:5])}"
            + (" ..." if len(self._skipped[split]) > 5 else "")
          )
        log.warning("No readable image in %s (%d skipped): the split is left out", folder, len(items))
        continue
      self._splits[split] = items[first:]
    self._note_orphan_masks(root, splits.get("test", []))
    return {split: self._generate_examples(split) for split in self._splits}

  def _first_readable(self, split: str, items) -> int | None:
    """Index of the first item that decodes (earlier ones are recorded as skipped), None if none does."""
    for i, (path, _, _) in enumerate(items):
      try:
        decode.read_image(path)
        return i
      except decode.BadImageError as e:
        self._skipped[split].append(f"{os.path.relpath(path, self.builder_config.root)}: {e.reason}")
    return None

  def _note_orphan_masks(self, root: str, items) -> None:
    """Mask files that belong to no cracked test image are named, not silently ignored."""
    expected = set()
    for path, label, defect in items:
      if label == 1:
        stem = os.path.splitext(os.path.basename(path))[0]
        expected.add(os.path.join(root, "ground_truth", defect, f"{stem}_mask.png"))
    gt = os.path.join(root, "ground_truth")
    for dirpath, _, files in os.walk(gt) if os.path.isdir(gt) else []:
      for f in sorted(files):
        p = os.path.join(dirpath, f)
        if p not in expected and decode.is_image_file(f):
          self._notes.setdefault("test", []).append(
            f"{os.path.relpath(p, root)}: matches no cracked image (a mask of test/<defect>/<stem>.* must be "
            "ground_truth/<defect>/<stem>_mask.png); ignored"
          )

  def _generate_examples(self, split):
    root = self.builder_config.root
    for path, label, defect in self._splits[split]:
      rel = os.path.relpath(path, root)
      try:
        image = decode.read_image(path)
      except decode.BadImageError as e:
        self._skipped[split].append(f"{rel}: {e.reason}")
        continue
      mask = None
      if label == 1 and split == "test":  # ground_truth/ holds the test images' masks (MVTec AD)
        stem = os.path.splitext(os.path.basename(path))[0]
        mask_path = os.path.join(root, "ground_truth", defect, f"{stem}_mask.png")
        if os.path.exists(mask_path):
          mask_rel = os.path.relpath(mask_path, root)
          try:
            mask, note = decode.read_mask(mask_path, image.shape[:2])
            if note:
              self._notes[split].append(f"{mask_rel}: {note}")
          except (OSError, ValueError) as e:
            self._skipped[split].append(f"{mask_rel}: unreadable mask ({e}); image kept without it")
      yield rel, _example(image, mask, label, defect, rel)
    self.info.metadata["skipped_files"] = {k: sorted(set(v)) for k, v in self._skipped.items()}
    self.info.metadata["notes"] = {k: sorted(set(v)) for k, v in self._notes.items()}


def skipped_files(builder, split: str) -> list[str]:
  """The files of `split` that could not be read (with the reason), from the prepared data set's metadata."""
  return list(builder.info.metadata.get("skipped_files", {}).get(split, []))


def notes(builder, split: str) -> list[str]:
  return list(builder.info.metadata.get("notes", {}).get(split, []))


# ------------------------------------------------------------------------------------------------ synthetic


@dataclasses.dataclass(kw_only=True)
class SyntheticConfig(tfds.core.BuilderConfig):
  image_size: int = 64
  seed: int = 0
  num_train: int = 1000
  num_val: int = 50  # per class (good, crack)
  num_test: int = 100  # per class
  num_unlabeled: int = 200
  unlabeled_crack_fraction: float = 0.15
  distractor_prob: float = 0.5


class SyntheticConcrete(tfds.core.GeneratorBasedBuilder):
  """Procedural concrete with cracks and distractors (crackjax.data.synthetic); no download."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=_features(), metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager):
    c = self.builder_config
    # Disjoint index ranges per split keep every image unique and reproducible on its own.
    plan = {
      "train": [(i, False) for i in range(c.num_train)],
      "val": [(10**6 + i, i % 2 == 1) for i in range(2 * c.num_val)],
      "test": [(2 * 10**6 + i, i % 2 == 1) for i in range(2 * c.num_test)],
      "unlabeled": [(3 * 10**6 + i, _held_out(str(i), c.unlabeled_crack_fraction)) for i in range(c.num_unlabeled)],
    }
    return {split: self._generate_examples(split, items) for split, items in plan.items() if items}

  def _generate_examples(self, split, items):
    c = self.builder_config
    for index, crack in items:
      image, mask = synthetic.generate(c.seed, index, c.image_size, crack=crack, distractor_prob=c.distractor_prob)
      label = (1 if crack else 0) if split != "unlabeled" else -1
      defect = ("crack" if crack else "good") if split != "unlabeled" else "unknown"
      name = f"{split}/{defect}/{index:07d}.png"
      yield name, _example(image, mask if crack else None, label, defect, name)
    self.info.metadata["skipped_files"] = {}
    self.info.metadata["notes"] = {}


_WARNED: set[str] = set()  # data sets whose skipped files were already listed in this process


def make_builder(*, root: str, data_dir: str, val_fraction: float, synthetic_cfg: dict | None = None):
  """The prepared builder for `root` ('' = synthetic concrete with `synthetic_cfg`), built on first use."""
  if root:
    root = os.path.abspath(root)
    scan_root(root, val_fraction)  # fail fast, before TFDS starts, with the layout in the message
    name = f"{os.path.basename(root.rstrip('/')) or 'root'}_{fingerprint(root)}_v{int(val_fraction * 1000)}"
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name).lower()
    config = FolderConfig(name=name, root=root, val_fraction=val_fraction)
    builder = AnomalyFolder(config=config, data_dir=data_dir, file_format="array_record")
    download_config = tfds.download.DownloadConfig(manual_dir=root)
  else:
    cfg = dict(synthetic_cfg or {})
    digest = hashlib.sha256(repr(sorted(cfg.items())).encode()).hexdigest()[:10]
    builder = SyntheticConcrete(
      config=SyntheticConfig(name=f"s{cfg.get('image_size', 64)}_{digest}", **cfg), data_dir=data_dir, file_format="array_record"
    )
    download_config = tfds.download.DownloadConfig()
  if not builder.is_prepared():
    log.info("Preparing %s into %s (first use; later runs reuse it)", root or "synthetic concrete", builder.data_dir)
    tfds.disable_progress_bar()
    builder.download_and_prepare(download_config=download_config)
    log.info("Prepared %s", {k: v.num_examples for k, v in builder.info.splits.items()})
  if builder.data_dir not in _WARNED:
    _WARNED.add(builder.data_dir)
    for split in sorted(builder.info.splits):
      skipped, notes_ = skipped_files(builder, split), notes(builder, split)
      if skipped:
        log.warning("%s, split %r: skipped %d unreadable file(s):\n  %s", root, split, len(skipped), "\n  ".join(skipped))
      if notes_:
        log.warning("%s, split %r: %d mask note(s):\n  %s", root, split, len(notes_), "\n  ".join(notes_))
  return builder


def builder_for(config, workdir: str, root: str):
  """make_builder with a config's data fields; prepared data lives in data.tfds_dir or <workdir>/tfds."""
  return make_builder(
    root=root,
    data_dir=config.data.tfds_dir or os.path.join(workdir, "tfds"),
    val_fraction=config.data.val_fraction,
    synthetic_cfg=config.data.synthetic.to_dict(),
  )
