"""Predict mode: score any folder of images (or one image), of any sizes, with any trained model kind.

Writes <workdir>/predict/<name>/:
    predictions.csv   file, score, verdict, threshold, error, and the photo's cracks (how many, the longest's
                      length, the widest's width, the red share): a row per file, appended as each image is done
    cracks.csv        one row per crack in a red mask: its length, mean and max width, orientation, position
                      (crackjax/cracks.py; millimetres too with predict.mm_per_pixel)
    report.html       the run for an inspector (crackjax/html_report.py): summary, sorted table, filters
    overlays/<file>.png   the photo, its heatmap on the model's colour scale and its red mask, at display size
    masks/<file>.png      the red mask at the photo's own resolution (crackjax/mask.py: the map upsampled
                      bilinearly, then decided; no red on a photo passed as good unless mask.on_good)
    thumbs/<file>.jpg     the report's thumbnails
A folder of thousands streams in bounded memory (images are read as the model needs them; photos larger than
`eval.tile_max_side` are scored in tiles), with progress (images/s, ETA). A killed or repeated run resumes: files
already in predictions.csv are skipped unless `predict.redo`. Unreadable, empty, truncated, non-image and too-large
files get a row with the error and the run goes on; a run in which nothing could be scored fails.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import time
import zlib
from collections.abc import Iterable, Iterator

import ml_collections
import numpy as np
from PIL import Image

from crackjax import calibration, cracks, files, html_report, overlay, report, streams, thresholds
from crackjax import mask as mask_lib
from crackjax.data import decode, pipeline
from crackjax.errors import UserError
from crackjax.scorer import Scorer, Stats, iter_maps, prefetch, tiling

log = logging.getLogger(__name__)

COLUMNS = [
  "file",
  "score",
  "verdict",
  "threshold",
  "error",
  "cracks",
  "longest_px",
  "widest_px",
  "red_share",
  "longest_mm",
  "widest_mm",
  *decode.METADATA,  # when and where the photo was taken (EXIF), '' where it does not say
]
CRACK_COLUMNS = ["file", *cracks.COLUMNS]
DISPLAY_SIDE = 1024  # figures are drawn from images downsampled to at most this side
MIN_DISPLAY_SIDE = 192  # ... and small images enlarged to at least this
THUMB_SIDE = 96  # report.html's inline thumbnails


def save_mask(hot: np.ndarray, path: str) -> None:
  """The red mask at the image's own resolution: red where the map reaches the threshold, transparent elsewhere
  (lay it over the photo; PNG compresses it to a few kB)."""
  rgba = np.zeros((*hot.shape, 4), np.uint8)
  rgba[hot] = (255, 0, 0, 255)
  with files.writing(path):
    Image.fromarray(rgba, "RGBA").save(path, optimize=True)


def list_inputs(path: str) -> list[str]:
  """Image files under `path` (recursively, links to folders not followed: no symlink loops), or `path` itself."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise UserError(f"config.predict.input={path!r} is neither an image file nor a folder")
  found = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(path, followlinks=False) for f in fs if decode.is_image_file(f))
  if not found:
    raise UserError(f"config.predict.input={path!r} holds no image files ({', '.join(decode.IMAGE_EXTENSIONS)})")
  return found


def output_name(path: str, src: str) -> str:
  """A file's name in overlays/ and masks/: its path under the input folder with '/' -> '__', extension kept
  (a.png and a.jpg in one folder are two images: a.png.png and a.jpg.png)."""
  base = src if os.path.isdir(src) else os.path.dirname(src)
  return os.path.relpath(path, base).replace(os.sep, "__") + ".png"


def image_id(path: str, src: str) -> int:
  """An image's noise id: a hash of its path under the input folder (the exported loader computes the same)."""
  base = src if os.path.isdir(src) else os.path.dirname(src)
  return zlib.crc32(os.path.relpath(path, base).encode()) & 0x7FFFFFFF


def load_threshold(config: ml_collections.ConfigDict, workdir: str) -> tuple[float, str]:
  """predict.threshold when set (>= 0), else predict.operating_point as calibrated on val at evaluation time
  (<workdir>/operating_points.json, or computed from <workdir>/val_scores.csv), printed with its val recall and
  false-alarm rate."""
  p = config.predict
  if p.threshold >= 0:
    return float(p.threshold), "predict.threshold"
  spec = p.operating_point
  points_path, val_path = os.path.join(workdir, "operating_points.json"), os.path.join(workdir, "val_scores.csv")
  point = None
  if os.path.exists(points_path):
    with open(points_path) as f:
      point = json.load(f)["points"].get(spec)
  if point is None and os.path.exists(val_path):
    with open(val_path, newline="") as f:
      rows = list(csv.DictReader(f))
    metrics_path = os.path.join(workdir, "metrics.json")
    f1_th = json.load(open(metrics_path))["image"]["threshold"] if os.path.exists(metrics_path) else None
    scores, labels = np.array([float(r["score"]) for r in rows]), np.array([int(r["label"]) for r in rows])
    point = thresholds.operating_point(scores, labels, spec, f1_th)
  if point is None:
    raise UserError(
      f"no operating points in {workdir} (operating_points.json, val_scores.csv): evaluate the model first (run "
      "without --mode, or --mode=evaluate), or set --config.predict.threshold"
    )
  fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
  log.info(
    "operating point %s: threshold %.6g, on val recall %s, false-alarm rate %s", spec, point["threshold"],
    fmt(point["val_recall"]), fmt(point["val_false_alarm_rate"]),
  )  # fmt: skip
  return float(
    point["threshold"]
  ), f"operating point {spec} (val recall {fmt(point['val_recall'])}, false-alarm rate {fmt(point['val_false_alarm_rate'])})"


def _done_rows(out_csv: str) -> dict[str, dict]:
  """The rows of an earlier run's predictions.csv, a row cut short (a write that failed) left out: scored again."""
  if not os.path.exists(out_csv):
    return {}
  with open(out_csv, newline="") as f:
    return {r["file"]: r for r in csv.DictReader(f) if r.get("file") and None not in r.values()}


def _read_full(path: str, max_pixels: int) -> np.ndarray:
  try:  # giant photos are refused from their header, before decoding
    return decode.read_image(path, max_pixels=max_pixels)
  except decode.BadImageError as e:
    if "megapixels" in e.reason:
      raise decode.BadImageError(path, e.reason + " (config.predict.max_megapixels)") from None
    raise


def _display(a: np.ndarray) -> np.ndarray:
  """Down to at most DISPLAY_SIDE, or up (nearest) to at least MIN_DISPLAY_SIDE, by an integer factor."""
  f = max(1, int(np.ceil(max(a.shape[:2]) / DISPLAY_SIDE)))
  up = max(1, MIN_DISPLAY_SIDE // max(a.shape[:2]))
  a = a[::f, ::f]
  return np.repeat(np.repeat(a, up, 0), up, 1) if up > 1 else a


def _fmt(v) -> str:
  return "" if v is None else f"{v:.4g}"


def ground_truth(folder: str, path: str, shape: tuple[int, int]) -> np.ndarray | None:
  """The mask <folder>/<stem>_mask.png of photo `path` as bool [H, W]; None where there is none, and (with a
  warning naming it) where it cannot be read or is not the photo's size."""
  if not folder:
    return None
  gt = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + "_mask.png")
  if not os.path.exists(gt):
    return None
  try:
    m = np.asarray(decode.read_image(gt))[..., 0] > 127
  except decode.BadImageError as e:
    log.warning("%s: %s; its photo's red mask is not scored", gt, e.reason)
    return None
  if m.shape != tuple(shape):
    log.warning("%s: a mask of %dx%d for a photo of %dx%d (%s); not scored", gt, m.shape[1], m.shape[0], shape[1], shape[0], path)
    return None
  return m


def red_shares(rows: list[dict]) -> dict:
  """How much red the photos carry: the median red share of flagged and of passed photos, and the share of passed
  photos without a red pixel."""

  def share(verdict_):
    v = [float(r["red_share"]) for r in rows if r["verdict"] == verdict_ and r.get("red_share", "") != ""]
    return v

  passed, flagged = share("good"), share("crack")
  med = lambda v: float(np.median(v)) if v else None  # noqa: E731
  return {
    "red_share_flagged": med(flagged),
    "red_share_passed": med(passed),
    "passed_without_red": float(np.mean([v == 0 for v in passed])) if passed else None,
  }


def _done_cracks(path: str, names: set) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path, newline="") as f:
    return [r for r in csv.DictReader(f) if r.get("file") in names]


def _line(values: list) -> bytes:
  buf = io.StringIO()
  csv.writer(buf).writerow(values)
  return buf.getvalue().encode()


class _Writer:
  """A CSV written row by row, each row whole or not at all: the earlier rows are rewritten into a new file that
  replaces the old one only when complete, and a row whose write fails (a full disk) is cut off again, so the
  rows already written stay intact and a rerun resumes after them. A failed write raises an OSError naming the
  file."""

  def __init__(self, path: str, columns: list[str], rows: list[dict]):
    self.path, self.columns = path, columns
    tmp = path + ".tmp"
    with files.writing(path), open(tmp, "wb") as f:
      f.write(_line(columns) + b"".join(_line([r.get(c, "") for c in columns]) for r in rows))
    os.replace(tmp, path)
    self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)

  def row(self, values: dict) -> None:
    data = _line([values.get(c, "") for c in self.columns])
    end = os.lseek(self.fd, 0, os.SEEK_END)
    try:
      with files.writing(self.path):
        while data:
          data = data[os.write(self.fd, data) :]
    except OSError:
      with contextlib.suppress(OSError):
        os.ftruncate(self.fd, end)
      raise

  def close(self) -> None:
    if self.fd is not None:
      os.close(self.fd)
      self.fd = None


def output_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """<workdir>/predict/<name>: predict.name, or the input's folder name."""
  p = config.predict
  name = p.name or os.path.basename(os.path.abspath(p.input).rstrip("/")) or "input"
  return os.path.join(workdir, "predict", name)


@dataclasses.dataclass
class Photo:
  """One file on its way through predict: read -> score -> decide -> measure -> write."""

  path: str
  img: np.ndarray | None = None  # uint8 [h, w, 3] at the working resolution (upright)
  shape: tuple[int, int] = (0, 0)  # the photo's own size
  meta: dict = dataclasses.field(default_factory=dict)  # EXIF time and place (decode.METADATA)
  error: str = ""  # why it could not be read ("" if it could)
  loc: np.ndarray | None = None  # the localization map [h, w]
  score: float = float("nan")
  hot: np.ndarray | None = None  # the red mask, bool at the photo's own size
  found: list = dataclasses.field(default_factory=list)  # its cracks (crackjax/cracks.py)


@dataclasses.dataclass
class Run:
  """What every photo of a predict run shares."""

  config: ml_collections.ConfigDict
  out_dir: str
  threshold: float
  source: str  # how the threshold was chosen
  decision: mask_lib.Decision
  border: int
  rows: _Writer  # predictions.csv
  crack_rows: _Writer  # cracks.csv
  gt_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3, np.int64))
  near_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
  n_gt: int = 0
  stats: Stats = dataclasses.field(default_factory=Stats)  # the model's time and compilations


def read(paths: list[str], config: ml_collections.ConfigDict) -> Iterator[Photo]:
  """The photos, decoded in a background thread ahead of the model; a file that cannot be read comes with its
  error."""

  def decoded():
    for path in paths:
      try:
        full = _read_full(path, int(config.predict.max_megapixels * 1e6))
        yield Photo(path, pipeline.resize_image(full, config.data.resize), full.shape[:2], decode.read_metadata(path))
      except (decode.BadImageError, OSError) as e:
        yield Photo(path, error=e.reason if isinstance(e, decode.BadImageError) else f"cannot be read ({e})")

  return prefetch(decoded())


def score(photos: Iterable[Photo], scorer: Scorer, config: ml_collections.ConfigDict, stats: Stats) -> Iterator[Photo]:
  """The photos with their localization maps and scores (in the order the model finishes them), and the ones
  that could not be read, passed on as soon as the next score comes."""
  unreadable: list[Photo] = []
  waiting: dict[str, Photo] = {}

  def readable():
    for ph in photos:
      if ph.error:
        unreadable.append(ph)
        continue
      waiting[ph.path] = ph
      yield ph.path, image_id(ph.path, config.predict.input), ph.img

  key = streams.key(config.seed, "predict")
  for path, m, s in iter_maps(scorer, readable(), key, batch_size=config.eval.batch_size, tile=tiling(config), stats=stats):
    yield from unreadable
    unreadable.clear()
    ph = waiting.pop(path)
    ph.loc, ph.score = m, s
    yield ph
  yield from unreadable


def decide(ph: Photo, run: Run) -> None:
  """The verdict and the red mask: the map upsampled to the photo's own size, then the model's decision (no red
  on a photo passed as good unless mask.on_good)."""
  flagged = ph.score >= run.threshold
  if flagged or run.decision.on_good:
    up = mask_lib.upsample(ph.loc, ph.shape)
    ph.hot = mask_lib.decide(up, run.decision, scale=ph.shape[1] / ph.loc.shape[1], border=run.border, flagged=flagged)
  else:
    ph.hot = np.zeros(ph.shape, bool)


def measure(ph: Photo, run: Run) -> None:
  """Each crack's length, widths and orientation; the red mask against a ground-truth mask where there is one."""
  p = run.config.predict
  ph.found = cracks.measure(ph.hot, p.mm_per_pixel) if ph.hot.any() else []
  gt = ground_truth(p.masks, ph.path, ph.shape)
  if gt is not None:
    run.gt_counts += mask_lib.counts(ph.hot, gt)
    run.near_counts += mask_lib.tolerant_counts(ph.hot, gt)
    run.n_gt += 1


def write(ph: Photo, run: Run) -> None:
  """The photo's mask, thumbnail and figure, then its rows: a photo in predictions.csv has its files (a rerun
  skips it)."""
  p = run.config.predict
  th = f"{run.threshold:.6g}"
  if ph.error:
    run.rows.row({"file": ph.path, "threshold": th, "error": ph.error})
    log.warning("%s: %s", ph.path, ph.error)
    return
  name = output_name(ph.path, p.input)
  save_mask(ph.hot, os.path.join(run.out_dir, "masks", name))
  thumb = Image.fromarray(ph.img)
  thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
  thumb_path = os.path.join(run.out_dir, "thumbs", name.removesuffix(".png") + ".jpg")
  with files.writing(thumb_path):
    thumb.save(thumb_path, quality=80)
  verdict = report.verdict(ph.score, run.threshold)
  if p.overlays == "all" or (p.overlays == "flagged" and verdict == "crack"):
    d = run.decision
    marks = {"low": d.low, "high": d.high} if d.high > d.low else {"low = high": d.low}
    di = _display(ph.img)
    dh = np.asarray(Image.fromarray(ph.hot).resize((di.shape[1], di.shape[0]), Image.Resampling.NEAREST))
    caption = f"{os.path.basename(ph.path)}: {verdict} ({ph.score:.3g}), {len(ph.found)} crack(s)"
    figure = os.path.join(run.out_dir, "overlays", name)
    with files.writing(figure):
      overlay.compose(di, _display(ph.loc)[: di.shape[0], : di.shape[1]], dh, d.colour_max, marks, caption).save(figure)
  for c in ph.found:
    run.crack_rows.row({"file": ph.path, **{k: v if isinstance(v, int) else _fmt(v) for k, v in c.items()}})
  per_photo = cracks.summary(ph.found)
  run.rows.row({
    "file": ph.path, "score": repr(float(ph.score)), "verdict": verdict, "threshold": th, "error": "",
    "cracks": per_photo["cracks"], "longest_px": _fmt(per_photo["longest_px"]), "widest_px": _fmt(per_photo["widest_px"]),
    "red_share": f"{ph.hot.mean():.6f}", "longest_mm": _fmt(per_photo["longest_mm"]),
    "widest_mm": _fmt(per_photo["widest_mm"]), **ph.meta,
  })  # fmt: skip


def start(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> tuple[Run, list[str], list[str]]:
  """The run's threshold, red-mask decision, folders and CSV files (earlier rows kept): (run, inputs, to do)."""
  p = config.predict
  if not p.input:
    raise UserError("--mode=predict needs --config.predict.input=/folder/or/image")
  if p.masks and not os.path.isdir(p.masks):
    raise UserError(f"config.predict.masks={p.masks!r} is not a folder")
  threshold, source = load_threshold(config, workdir)
  decision = calibration.decision(config, workdir, scorer)
  inputs = list_inputs(p.input)
  out_dir = output_dir(config, workdir)
  for sub in ("overlays", "masks", "thumbs"):
    os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
  out_csv, cracks_csv = os.path.join(out_dir, "predictions.csv"), os.path.join(out_dir, "cracks.csv")
  done = {} if p.redo else _done_rows(out_csv)
  done = {k: v for k, v in done.items() if k in set(inputs)}
  todo = [f for f in inputs if f not in done]
  log.info(
    "predict: %d file(s) in %s, %d already scored in %s%s; threshold %.6g (%s); red mask: low %.4g, high %.4g, "
    "min length %g px%s",
    len(inputs), p.input, len(done), out_csv, " (skipped; predict.redo=True scores them again)" if done else "",
    threshold, source, decision.low, decision.high, decision.min_length, ", also on passed photos" if decision.on_good else "",
  )  # fmt: skip
  rows = _Writer(out_csv, COLUMNS, list(done.values()))
  crack_rows = _Writer(cracks_csv, CRACK_COLUMNS, _done_cracks(cracks_csv, set(done)))
  return Run(config, out_dir, threshold, source, decision, calibration.border_of(scorer), rows, crack_rows), inputs, todo


def predict(config: ml_collections.ConfigDict, workdir: str, scorer: Scorer) -> str:
  """Scores config.predict.input; returns the path of predictions.csv."""
  run, inputs, todo = start(config, workdir, scorer)
  t0, t_log = time.time(), time.time()
  try:
    for n, ph in enumerate(score(read(todo, config), scorer, config, run.stats), 1):
      if not ph.error:
        decide(ph, run)
        measure(ph, run)
      write(ph, run)
      if time.time() - t_log > 10 or n == len(todo):
        rate = n / max(time.time() - t0, 1e-9)
        log.info("predict: %d/%d files, %.2f files/s, ETA %.0f s", n, len(todo), rate, (len(todo) - n) / max(rate, 1e-9))
        t_log = time.time()
  finally:
    run.rows.close()
    run.crack_rows.close()
  return finish(run, scorer, time.time() - t0, len(todo))


def finish(run: Run, scorer: Scorer, seconds: float, n_todo: int) -> str:
  """summary.json and report.html from the rows on disk (this run's and an earlier one's); a run in which nothing
  could be scored fails."""
  p = run.config.predict
  out_csv, cracks_csv = os.path.join(run.out_dir, "predictions.csv"), os.path.join(run.out_dir, "cracks.csv")
  rows = _done_rows(out_csv)
  scored = [r for r in rows.values() if r["score"]]
  n_crack = sum(r["verdict"] == "crack" for r in scored)
  crack_rows = _done_cracks(cracks_csv, set(rows))
  log.info(
    "predicted %d file(s): %d crack, %d good, %d unreadable, %d crack(s) measured -> %s",
    len(rows), n_crack, len(scored) - n_crack, len(rows) - len(scored), len(crack_rows), out_csv,
  )  # fmt: skip
  summary = {
    "input": p.input, "files": len(rows), "scored": len(scored), "crack": n_crack, "errors": len(rows) - len(scored),
    "threshold": run.threshold, "threshold_source": run.source, "model": dict(scorer.info),
    "seconds": seconds, "model_seconds": run.stats.seconds, "compile_seconds": run.stats.compile_seconds,
    "images_per_second": n_todo / max(seconds, 1e-9),
    "mask": run.decision.to_json(), "red": red_shares(scored),
    "cracks": {
      "count": len(crack_rows),
      "longest_px": max((float(r["length_px"]) for r in crack_rows), default=None),
      "widest_px": max((float(r["max_width_px"]) for r in crack_rows), default=None),
      "mm_per_pixel": p.mm_per_pixel or None,
    },
  }  # fmt: skip
  if run.n_gt:  # the red masks as shipped against ground truth, at the photos' own resolution (this run's photos)
    near = mask_lib.tolerant_scores(run.near_counts)
    summary["mask_metrics"] = {**mask_lib.scores_of(run.gt_counts), "within_2px": near, "photos": run.n_gt, "masks": p.masks}
    mm = summary["mask_metrics"]
    log.info(
      "red masks against %d ground-truth mask(s): precision %s, recall %s, F1 %s, IoU %s; within %g px: precision %s, "
      "recall %s, F1 %s",
      run.n_gt, *(_fmt(mm[k]) for k in ("precision", "recall", "f1", "iou")), mask_lib.TOLERANCE,
      *(_fmt(near[k]) for k in ("precision", "recall", "f1")),
    )  # fmt: skip
  located = [{"file": r["file"], **{k: r.get(k) or "" for k in decode.METADATA}} for r in scored]
  located = [r for r in located if any(r[k] for k in decode.METADATA)]
  summary["metadata"] = {  # the photos' own EXIF time and place, for the photos that carry any
    "with_time": sum(bool(r["taken"]) for r in located), "with_position": sum(bool(r["latitude"]) for r in located),
    "photos": located,
  }  # fmt: skip
  report.write_json(os.path.join(run.out_dir, "summary.json"), summary)
  page = html_report.write(run.out_dir, lambda path: output_name(path, p.input))
  log.info("report -> %s", page)
  if not scored:
    raise UserError(f"none of the {len(rows)} file(s) in {p.input} could be scored (errors in {out_csv})")
  return out_csv
