import io
import os

import numpy as np
import pytest
from PIL import Image

from crackjax.data import builders, decode, pipeline, synthetic
from crackjax.errors import UserError


def _png(path, arr):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(arr).save(path)


def _texture(seed, size=32):
  return synthetic.generate(seed, 0, size, crack=False)[0]


# ---------------------------------------------------------------------------------------------- decoding


def test_decode_converts_every_kind_of_image(tmp_path):
  rgb = _texture(0)
  cases = {
    "gray.png": Image.fromarray(rgb[..., 0]),
    "rgba.png": Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
    "palette.png": Image.fromarray(rgb).convert("P"),
    "sixteen.png": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
    "odd.jpg": Image.fromarray(rgb[:31, :29]),
    "bw.png": Image.fromarray(rgb[..., 0] > 128),
  }
  for name, im in cases.items():
    im.save(tmp_path / name)
    out = decode.read_image(str(tmp_path / name))
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, name
  np.testing.assert_array_equal(decode.read_image(str(tmp_path / "gray.png"))[..., 1], rgb[..., 0])
  # 16-bit values scale to 8 bits instead of clipping to white.
  np.testing.assert_allclose(decode.read_image(str(tmp_path / "sixteen.png"))[..., 0], rgb[..., 0], atol=1)
  assert decode.read_image(str(tmp_path / "odd.jpg")).shape == (31, 29, 3)
  # Transparent pixels composite on white.
  rgba = np.zeros((16, 16, 4), np.uint8)
  Image.fromarray(rgba).save(tmp_path / "clear.png")
  assert decode.read_image(str(tmp_path / "clear.png")).min() == 255


@pytest.mark.parametrize(
  "kind,reason",
  [
    ("empty", "empty"),
    ("text", "not an image"),
    ("truncated", "corrupt or truncated"),
    ("tiny", "too small"),
    ("garbage_png", "corrupt or truncated|not an image"),
  ],
)
def test_decode_bad_files_name_the_file_and_reason(tmp_path, kind, reason):
  path = str(tmp_path / f"{kind}.png")
  buf = io.BytesIO()
  Image.fromarray(_texture(1, 64)).save(buf, format="PNG")
  data = {
    "empty": b"",
    "text": b"hello, not an image",
    "truncated": buf.getvalue()[: len(buf.getvalue()) // 2],
    "garbage_png": buf.getvalue()[:40] + os.urandom(300),
  }.get(kind)
  if kind == "tiny":
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
  else:
    open(path, "wb").write(data)
  with pytest.raises(decode.BadImageError, match=reason) as e:
    decode.read_image(path)
  assert e.value.path == path and path in str(e.value)


# ---------------------------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_masks_are_exact():
  a, ma = synthetic.generate(3, 7, 64, crack=True)
  b, mb = synthetic.generate(3, 7, 64, crack=True)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ma, mb)
  assert not np.array_equal(a, synthetic.generate(3, 8, 64, crack=True)[0])
  assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and ma.dtype == np.uint8
  assert 0 < ma.mean() < 0.2
  good, mg = synthetic.generate(3, 7, 64, crack=False)
  assert mg.sum() == 0
  # Same seed and index without the crack: the crack darkens the pixels under its mask.
  dark_on = (good.astype(float) - a.astype(float)).mean(-1)[ma == 1].mean()
  assert dark_on > 20


# ---------------------------------------------------------------------------------------------- folder builder


def make_root(root, *, with_val=True, bad=True, n_train=12):
  for i in range(n_train):
    _png(f"{root}/train/good/{i:03d}.png", _texture(i))
  if with_val:
    for i in range(3):
      _png(f"{root}/val/good/v{i}.png", _texture(100 + i))
      _png(f"{root}/val/crack/c{i}.png", synthetic.generate(0, 200 + i, 32, crack=True)[0])
  for i in range(3):
    _png(f"{root}/test/good/g{i}.png", _texture(300 + i))
    img, m = synthetic.generate(0, 400 + i, 32, crack=True)
    _png(f"{root}/test/crack/c{i}.jpg", img)
    _png(f"{root}/ground_truth/crack/c{i}_mask.png", m * 255)
  _png(f"{root}/test/crack/nomask.png", synthetic.generate(0, 500, 32, crack=True)[0])
  _png(f"{root}/test/good/gray.png", _texture(9)[..., 0])
  if bad:
    open(f"{root}/train/good/broken.png", "wb").write(b"\x89PNG\r\n\x1a\nbroken")
    open(f"{root}/test/good/empty.jpg", "wb").write(b"")
  return str(root)


def test_folder_builder_reads_layout_skips_bad_files_and_keeps_masks(tmp_path):
  root = make_root(tmp_path / "root")
  b = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {"train": 12, "val": 6, "test": 8}
  assert builders.skipped_files(b, "test") == ["test/good/empty.jpg: empty file (0 bytes)"]
  (broken,) = builders.skipped_files(b, "train")  # each split's own files, not the test files under "train"
  assert broken.startswith("train/good/broken.png: ") and builders.skipped_files(b, "val") == []
  test = pipeline.load_split(b, "test", resize=1.0)
  by_name = dict(zip(test.filenames, range(len(test))))
  i = by_name["test/crack/c0.jpg"]
  assert test.labels[i] == 1 and test.has_mask[i] and test.masks[i].sum() > 0
  assert not test.has_mask[by_name["test/crack/nomask.png"]]
  assert test.labels[by_name["test/good/gray.png"]] == 0 and test.images[by_name["test/good/gray.png"]].shape == (32, 32, 3)
  # Metadata survives a reload from disk (a second run reads the prepared data).
  b2 = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  assert builders.skipped_files(b2, "test") == builders.skipped_files(b, "test")


def test_folder_without_val_holds_out_part_of_train(tmp_path):
  root = make_root(tmp_path / "root", with_val=False, bad=False, n_train=40)
  b = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.25)
  n_train, n_val = b.info.splits["train"].num_examples, b.info.splits["val"].num_examples
  assert n_train + n_val == 40 and 3 <= n_val <= 20
  train = set(pipeline.load_split(b, "train", resize=1.0).filenames)
  val = set(pipeline.load_split(b, "val", resize=1.0).filenames)
  assert not train & val


def test_missing_and_empty_roots_are_clear_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist.*MVTec"):
    builders.make_builder(root=str(tmp_path / "nope"), data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  os.makedirs(tmp_path / "empty" / "train" / "good")
  with pytest.raises(UserError, match="no images under .*train/good"):
    builders.make_builder(root=str(tmp_path / "empty"), data_dir=str(tmp_path / "tfds"), val_fraction=0.1)


def test_changed_folder_is_prepared_again(tmp_path):
  root = make_root(tmp_path / "root", bad=False)
  b = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  _png(f"{root}/train/good/new.png", _texture(77))
  b2 = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  assert b2.info.splits["train"].num_examples == b.info.splits["train"].num_examples + 1


def test_synthetic_builder_splits(tmp_path):
  b = builders.make_builder(
    root="",
    data_dir=str(tmp_path),
    val_fraction=0.1,
    synthetic_cfg=dict(image_size=32, num_train=5, num_val=2, num_test=3, num_unlabeled=4),
  )
  test = pipeline.load_split(b, "test", resize=1.0)
  assert len(test) == 6 and sorted(test.labels) == [0, 0, 0, 1, 1, 1]
  assert all(test.has_mask[test.labels == 1]) and all(m.sum() > 0 for m, y in zip(test.masks, test.labels) if y == 1)
  un = pipeline.load_split(b, "unlabeled", resize=1.0)
  assert set(un.labels) == {-1}


# ---------------------------------------------------------------------------------------------- pipeline


def test_crops_are_deterministic_in_seed_and_step_and_in_range():
  images = [_texture(i, 40) for i in range(3)] + [_texture(5, 20)]  # one smaller than the crop: padded
  a = next(pipeline.train_batches(images, batch_size=6, crop_size=32, seed=1, start_step=5))
  s = pipeline.train_batches(images, batch_size=6, crop_size=32, seed=1, start_step=4)
  next(s)
  np.testing.assert_array_equal(a, next(s))
  assert a.shape == (6, 32, 32, 3) and a.dtype == np.float32 and -1 <= a.min() and a.max() <= 1
  c = next(pipeline.train_batches(images, batch_size=6, crop_size=32, seed=2, start_step=5))
  assert not np.array_equal(a, c)


def test_resize_and_padding():
  img = _texture(0, 64)[:50, :38]
  assert pipeline.resize_image(img, 0.5).shape == (25, 19, 3)
  mask = np.zeros((50, 38), np.uint8)
  mask[10:12, :] = 1
  assert pipeline.resize_mask(mask, 0.5).sum() > 0


def test_max_images_alternates_good_and_cracked(tmp_path):
  root = make_root(tmp_path / "root", bad=False)
  b = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  test = pipeline.load_split(b, "test", resize=1.0, max_images=6)
  assert list(test.labels) == [0, 1, 0, 1, 0, 1]
  full = pipeline.load_split(b, "test", resize=1.0)
  assert set(test.filenames) < set(full.filenames)


# ---------------------------------------------------------------------------------------------- bad layouts


def test_a_root_with_two_train_images_holds_one_out_and_one_image_is_refused(tmp_path):
  for i in range(2):
    _png(f"{tmp_path}/two/train/good/{i}.png", _texture(i))
  b = builders.make_builder(root=str(tmp_path / "two"), data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  assert b.info.splits["train"].num_examples == 1 and b.info.splits["val"].num_examples == 1
  _png(f"{tmp_path}/one/train/good/0.png", _texture(0))
  with pytest.raises(ValueError, match="train/good has 1 image: too few"):
    builders.make_builder(root=str(tmp_path / "one"), data_dir=str(tmp_path / "tfds"), val_fraction=0.1)


def test_a_split_of_unreadable_files_is_never_written_empty(tmp_path):
  root = make_root(tmp_path / "root", with_val=False, bad=False)
  for name in os.listdir(f"{root}/test/good"):
    open(f"{root}/test/good/{name}", "wb").write(b"not an image")
  for name in os.listdir(f"{root}/test/crack"):
    open(f"{root}/test/crack/{name}", "wb").write(b"")
  b = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.3)
  assert "test" not in b.info.splits and len(builders.skipped_files(b, "test")) == 8
  for name in os.listdir(f"{root}/train/good"):
    open(f"{root}/train/good/{name}", "wb").write(b"")
  with pytest.raises(UserError, match=r"no readable image in .*train/good: .*empty file"):
    builders.make_builder(root=root, data_dir=str(tmp_path / "tfds2"), val_fraction=0.3)


def test_mask_problems_are_named_once(tmp_path, caplog):
  root = make_root(tmp_path / "root", bad=False)
  img, m = synthetic.generate(0, 401, 32, crack=True)
  _png(f"{root}/ground_truth/crack/c1_mask.png", np.kron(m, np.ones((2, 2), np.uint8)) * 255)  # half resolution
  _png(f"{root}/ground_truth/crack/c2_mask.png", (m[:, :16] * 255))  # another aspect ratio
  _png(f"{root}/ground_truth/crack/c0.png", m * 255)  # not <stem>_mask.png
  caplog.set_level("WARNING")
  b = builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)
  notes = builders.notes(b, "test")
  assert any(n.startswith("ground_truth/crack/c1_mask.png: mask is 64x64, its image 32x32: resized") for n in notes)
  assert any(n.startswith("ground_truth/crack/c0.png: matches no cracked image") for n in notes)
  (c2,) = [f for f in builders.skipped_files(b, "test") if "c2_mask" in f]
  assert "another aspect ratio" in c2 and "image kept without it" in c2
  test = pipeline.load_split(b, "test", resize=1.0)
  i1, i2 = test.filenames.index("test/crack/c1.jpg"), test.filenames.index("test/crack/c2.jpg")
  assert test.has_mask[i1] and test.masks[i1].shape == (32, 32) and not test.has_mask[i2]
  builders.make_builder(root=root, data_dir=str(tmp_path / "tfds"), val_fraction=0.1)  # a second use: no second warning
  assert sum("c2_mask" in r.getMessage() for r in caplog.records) == 1
