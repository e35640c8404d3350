"""Image decoding that survives the files inspectors actually have.

Every readable image becomes uint8 RGB [H, W, 3]: grayscale, palette, RGBA (composited on white), CMYK, 16-bit
and float images are converted. Corrupt, truncated, empty and non-image files raise `BadImageError` naming the file
and the reason, so that callers can skip them and report them together.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE = 8  # pixels; smaller images are rejected as unusable


class BadImageError(ValueError):
  def __init__(self, path: str, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = path
    self.reason = reason


def is_image_file(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _to_uint8(arr: np.ndarray) -> np.ndarray:
  if arr.dtype == np.uint8:
    return arr
  if arr.dtype == np.bool_:
    return arr.astype(np.uint8) * 255
  if np.issubdtype(arr.dtype, np.floating):
    hi = 1.0 if np.nanmax(arr) <= 1.0 else 255.0
    return np.clip(np.nan_to_num(arr) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
  # Integer images deeper than 8 bits: 16-bit PNG/TIFF store 0..65535.
  hi = 65535.0 if arr.max() > 255 or arr.dtype in (np.uint16, np.int32, np.uint32) else 255.0
  return np.clip(arr.astype(np.float64) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)


def pil_to_rgb(im: Image.Image) -> np.ndarray:
  """Any PIL image -> uint8 [H, W, 3]."""
  if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
  if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
    return np.repeat(_to_uint8(np.asarray(im))[..., None], 3, axis=-1)
  if im.mode != "RGB":
    im = im.convert("RGB")
  return np.asarray(im, dtype=np.uint8)


def read_image(path: str, max_pixels: int | None = None) -> np.ndarray:
  """Reads `path` as uint8 RGB [H, W, 3]; raises BadImageError with the reason (also for images of more than
  `max_pixels` pixels, checked from the header before decoding)."""
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise BadImageError(path, f"cannot be read ({e.strerror})") from None
  if size == 0:
    raise BadImageError(path, "empty file (0 bytes)")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      with Image.open(path) as im:
        if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
          raise BadImageError(path, f"{im.size[0]}x{im.size[1]} is larger than {max_pixels / 1e6:g} megapixels")
        im.load()  # forces the full decode: truncated files fail here, not later
        arr = pil_to_rgb(im)
  except UnidentifiedImageError:
    raise BadImageError(path, "not an image, or a format Pillow cannot read") from None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
    raise BadImageError(path, f"corrupt or truncated image ({e})") from None
  if arr.ndim != 3 or min(arr.shape[:2]) < MIN_SIDE:
    raise BadImageError(path, f"image too small ({arr.shape[1]}x{arr.shape[0]}; need at least {MIN_SIDE}x{MIN_SIDE})")
  return arr


def read_mask(path: str, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
  """Reads a pixel mask (white = crack) as uint8 {0, 1} [H, W] for an image of `shape`, and a note ('' if none).

  A mask of another size with the image's aspect ratio (within 2%, e.g. saved at half resolution) is resized
  (nearest) and the note says so; one of another aspect ratio cannot be placed and raises ValueError."""
  with Image.open(path) as im:
    im.load()
    note = ""
    if im.size != (shape[1], shape[0]):
      w, h = im.size
      if abs((w / h) / (shape[1] / shape[0]) - 1) > 0.02:
        raise ValueError(f"mask is {w}x{h}, its image {shape[1]}x{shape[0]}: another aspect ratio, it cannot be placed")
      note = f"mask is {w}x{h}, its image {shape[1]}x{shape[0]}: resized (nearest) to the image"
      im = im.resize((shape[1], shape[0]), Image.NEAREST)
    arr = pil_to_rgb(im).max(axis=-1)
  return (arr > 127).astype(np.uint8), note
