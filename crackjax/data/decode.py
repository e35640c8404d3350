"""Image decoding that survives the files inspectors actually have.

Every readable image becomes uint8 RGB [H, W, 3]: grayscale, palette, RGBA (composited on white), CMYK, 16-bit
and float images are converted, and turned upright by their EXIF orientation (a phone's portrait photo stored
sideways is scored, masked and drawn as a viewer shows it). Corrupt, truncated, empty and non-image files raise
`BadImageError` naming the file and the reason, so that callers can skip them and report them together.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

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


def upright(im: Image.Image) -> Image.Image:
  """The image as a viewer displays it: its EXIF orientation applied (the image itself where it has none, or an
  unreadable one)."""
  try:
    return ImageOps.exif_transpose(im)
  except Exception:  # a damaged EXIF block: the pixels as stored
    return im


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
        arr = pil_to_rgb(upright(im))
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
    im = upright(im)
    note = ""
    if im.size != (shape[1], shape[0]):
      w, h = im.size
      if abs((w / h) / (shape[1] / shape[0]) - 1) > 0.02:
        raise ValueError(f"mask is {w}x{h}, its image {shape[1]}x{shape[0]}: another aspect ratio, it cannot be placed")
      note = f"mask is {w}x{h}, its image {shape[1]}x{shape[0]}: resized (nearest) to the image"
      im = im.resize((shape[1], shape[0]), Image.NEAREST)
    arr = pil_to_rgb(im).max(axis=-1)
  return (arr > 127).astype(np.uint8), note


METADATA = ("taken", "latitude", "longitude", "altitude_m")  # read_metadata's fields, '' where a photo has none
_EXIF_TIME, _EXIF_OFFSET, _BASE_TIME = 36867, 36881, 306  # DateTimeOriginal, OffsetTimeOriginal, DateTime


def _degrees(dms, ref) -> float | None:
  try:
    d, m, s = (float(v) for v in dms)
  except (TypeError, ValueError, ZeroDivisionError):
    return None
  value = d + m / 60 + s / 3600
  return -value if str(ref).strip().upper() in ("S", "W") else value


def read_metadata(path: str) -> dict[str, str]:
  """Where and when a photo was taken, from its EXIF (phones, drones): `taken` (DateTimeOriginal, else DateTime,
  as YYYY-MM-DD HH:MM:SS with the camera's UTC offset where it wrote one; the text as written where it does not
  parse), `latitude` / `longitude` (decimal degrees, south and west negative) and `altitude_m` (metres, below
  sea level negative). Each '' where the photo does not carry it, or cannot be read; nothing is guessed."""
  out = dict.fromkeys(METADATA, "")
  try:
    with Image.open(path) as im:
      exif = im.getexif()
      sub = exif.get_ifd(ExifTags.IFD.Exif)
      gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
  except Exception:  # unreadable files are reported by read_image
    return out
  taken = str(sub.get(_EXIF_TIME) or exif.get(_BASE_TIME) or "").strip().strip("\x00")
  if taken:
    date, _, clock = taken.partition(" ")
    if len(date) == 10 and date[4] == ":" and date[7] == ":":
      taken = f"{date.replace(':', '-')} {clock}".strip()
    offset = str(sub.get(_EXIF_OFFSET) or "").strip().strip("\x00")
    out["taken"] = f"{taken}{offset}" if offset else taken
  lat = _degrees(gps.get(2), gps.get(1, "N")) if gps.get(2) is not None else None
  lon = _degrees(gps.get(4), gps.get(3, "E")) if gps.get(4) is not None else None
  if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
    out["latitude"], out["longitude"] = f"{lat:.7f}", f"{lon:.7f}"
  try:
    if gps.get(6) is not None:
      alt = float(gps[6])
      ref = gps.get(5, 0)
      below = (ref[0] if isinstance(ref, bytes) and ref else ref) == 1
      out["altitude_m"] = f"{-alt if below else alt:.2f}"
  except (TypeError, ValueError, ZeroDivisionError):
    pass
  return out
