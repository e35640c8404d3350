"""Streamed training data (data.stream, crackjax/data/stream.py) on a generated set of N synthetic images: host
memory and crops/s against what the training step consumes. Run by hand (never a timed test):

    python benchmarks/stream.py --n=100000 --workdir=runs/stream_bench

1. prepares N synthetic train images (array_record, once; reused by later runs of the same N and size);
2. per worker count, in a fresh process: streams --batches batches of the default training batch and reports
   crops/s and the peak resident memory of that process and its grain workers;
3. for comparison, in a fresh process: the in-memory path (pipeline.load_images of the whole split) and its peak
   resident memory;
4. the training step's need: crops/s = steps/s x batch of the default UNet on this machine;
5. evaluation (--eval_n images of the same split scored by the no-learning darkness kind, as `evaluate` scores a
   split): streamed (decoded as scored, no maps kept) against in memory, peak resident memory and images/s each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _config(n: int, size: int):
  from configs import ddim_50

  c = ddim_50.get_config()
  c.data.synthetic.update(num_train=n, image_size=size, num_val=1, num_test=1, num_unlabeled=0)
  return c


class PeakRSS:
  """Peak resident memory (bytes) of this process and its children, sampled every 50 ms."""

  def __init__(self):
    import psutil

    self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    while not self._stop.is_set():
      try:
        rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
      except Exception:  # a worker that just exited
        rss = 0
      self.peak = max(self.peak, rss)
      time.sleep(0.05)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


def _builder(args):
  from crackjax.data import builders

  return builders.builder_for(_config(args.n, args.size), args.workdir, "")


def child_stream(args) -> dict:
  from crackjax.data import stream

  c = _config(args.n, args.size)
  with PeakRSS() as mem:
    source = _builder(args).as_data_source(split="train")
    loader = stream.train_loader(
      source, batch_size=c.train.batch_size, crop_size=c.data.crop_size, resize=c.data.resize, seed=0,
      workers=int(args.workers),
    )  # fmt: skip
    it = iter(loader)
    next(it)  # workers started, first batch ready
    t0 = time.perf_counter()
    for _ in range(args.batches):
      batch = next(it)
    dt = time.perf_counter() - t0
  return {
    "workers": int(args.workers), "batches": args.batches, "batch": int(batch.shape[0]), "crop": int(batch.shape[1]),
    "crops_per_second": args.batches * batch.shape[0] / dt, "peak_rss_gib": mem.peak / 2**30,
  }  # fmt: skip


def child_memory(args) -> dict:
  from crackjax.data import pipeline

  with PeakRSS() as mem:
    t0 = time.perf_counter()
    images, _ = pipeline.load_images(_builder(args), "train", resize=1.0)
    dt = time.perf_counter() - t0
  return {"images": len(images), "load_seconds": dt, "peak_rss_gib": mem.peak / 2**30}


def child_train(args) -> dict:
  import jax

  from crackjax.benchmark import train_speed

  c = _config(args.n, args.size)
  row = train_speed(c, jax.random.PRNGKey(0), steps=10)[0]
  rate = row["train_steps_per_second"]
  return {"train_steps_per_second": rate, "batch": c.train.batch_size, "crops_per_second_needed": rate * c.train.batch_size}


def child_eval(args) -> dict:
  import jax

  from configs import darkness
  from crackjax import kinds, report
  from crackjax.data import pipeline
  from crackjax.scorer import compute_maps

  c = darkness.get_config()
  scorer = kinds.get("darkness").make_scorer(c, args.workdir)
  stream = bool(int(args.stream))
  with PeakRSS() as mem:
    t0 = time.perf_counter()
    split = pipeline.load_split(_builder(args), "train", resize=1.0, max_images=args.eval_n, stream=stream)
    keep = report.pixel_metric_images(split) if stream else None
    res = compute_maps(scorer, split.images, jax.random.PRNGKey(0), batch_size=c.eval.batch_size, keep=keep)
    dt = time.perf_counter() - t0
  return {"stream": stream, "images": len(res.scores), "seconds": dt, "images_per_second": len(res.scores) / dt,
          "peak_rss_gib": mem.peak / 2**30}  # fmt: skip


def _run_child(what: str, args, **extra) -> dict:
  cmd = [sys.executable, __file__, f"--child={what}", f"--n={args.n}", f"--size={args.size}", f"--workdir={args.workdir}"]
  cmd += [f"--batches={args.batches}", f"--eval_n={args.eval_n}"] + [f"--{k}={v}" for k, v in extra.items()]
  out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", type=int, default=100_000, help="synthetic train images")
  p.add_argument("--size", type=int, default=64, help="image side, pixels")
  p.add_argument("--workdir", default="runs/stream_bench")
  p.add_argument("--workers", default="0,2", help="grain worker counts to time, comma-separated")
  p.add_argument("--batches", type=int, default=200)
  p.add_argument("--eval_n", type=int, default=20_000, help="images scored by the evaluation part (0: skip it)")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  p.add_argument("--stream", default="1", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    fn = {"stream": child_stream, "memory": child_memory, "train": child_train, "eval": child_eval}[args.child]
    print(json.dumps(fn(args)))
    return
  from crackjax.benchmark import machine

  t0 = time.perf_counter()
  builder = _builder(args)
  prep = time.perf_counter() - t0
  path = os.path.join(builder.data_dir)
  disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
  out = {
    "command": "python " + " ".join(sys.argv),
    "machine": machine(),
    "n": args.n,
    "size": args.size,
    "prepare_seconds": prep,
    "disk_gib": disk / 2**30,
    "stream": [_run_child("stream", args, workers=int(w)) for w in args.workers.split(",")],
    "in_memory": _run_child("memory", args),
    "train": _run_child("train", args),
    "eval": [_run_child("eval", args, stream=s) for s in (1, 0)] if args.eval_n else [],
  }
  os.makedirs(args.workdir, exist_ok=True)
  with open(os.path.join(args.workdir, "stream_benchmark.json"), "w") as f:
    json.dump(out, f, indent=2)
  print(f"command : {out['command']}\nmachine : {out['machine']}")
  print(f"data    : {args.n:,} synthetic {args.size}x{args.size} train images, {out['disk_gib']:.2f} GiB on disk "
        f"(prepared in {prep:.0f} s; 0 s when reused)")  # fmt: skip
  for s in out["stream"]:
    print(f"stream  : {s['workers']} worker(s): {s['crops_per_second']:.0f} crops/s "
          f"({s['batch']} x {s['crop']}x{s['crop']} per batch), peak RSS {s['peak_rss_gib']:.2f} GiB")  # fmt: skip
  m = out["in_memory"]
  print(f"memory  : the whole split in memory: peak RSS {m['peak_rss_gib']:.2f} GiB, {m['load_seconds']:.0f} s to load")
  t = out["train"]
  print(f"train   : the default UNet consumes {t['crops_per_second_needed']:.0f} crops/s "
        f"({t['train_steps_per_second']:.2f} steps/s x {t['batch']})")  # fmt: skip
  for e in out["eval"]:
    print(f"evaluate: {e['images']:,} images scored {'streamed' if e['stream'] else 'in memory'}: "
          f"{e['images_per_second']:.0f} images/s, peak RSS {e['peak_rss_gib']:.2f} GiB")  # fmt: skip


if __name__ == "__main__":
  main()
