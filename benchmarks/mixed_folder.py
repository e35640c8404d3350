"""The predict command on a survey folder of mixed sizes, as a user runs it: how many compilations, how many seconds
of them, and photos/s. Writes 40 JPEGs of 8 sizes (5 each, 150x200 to 1024x768, concrete-grey noise with a dark
line; the same files on every machine), runs `main.py --mode=predict` on them with a cold compilation cache (a
fresh HOME), and prints the command, the machine and the predict summary's timings.

    python benchmarks/mixed_folder.py --config=configs/ddim_50.py:data=../shared/data/concrete_pavement --workdir=runs/cp

--repo runs another checkout's main.py on the same folder and workdir (an earlier commit, for a before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

SIZES = [(150, 200), (200, 150), (227, 227), (300, 400), (400, 300), (480, 640), (640, 480), (768, 1024)]
PER_SIZE = 5


def write_folder(folder: str) -> int:
  rng = np.random.default_rng(0)
  os.makedirs(folder, exist_ok=True)
  n = 0
  for h, w in SIZES:
    for i in range(PER_SIZE):
      img = rng.integers(100, 160, (h, w, 3), dtype=np.uint8)
      y = h // 4 + i * h // 10
      img[y : y + 3, w // 8 : 7 * w // 8] //= 3
      Image.fromarray(img).save(os.path.join(folder, f"{h}x{w}_{i}.jpg"), quality=90)
      n += 1
  return n


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or "unknown CPU"


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--config", required=True)
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  ap.add_argument("--name", default="mixed_folder_bench")
  args = ap.parse_args()
  repo = os.path.abspath(args.repo)
  with tempfile.TemporaryDirectory() as tmp:
    folder = os.path.join(tmp, "photos")
    n = write_folder(folder)
    cmd = [
      sys.executable, "main.py", f"--config={args.config}", f"--workdir={os.path.abspath(args.workdir)}", "--mode=predict",
      f"--config.predict.input={folder}", f"--config.predict.name={args.name}", "--config.predict.redo=True",
    ]  # fmt: skip
    env = {**os.environ, "HOME": os.path.join(tmp, "home")}  # a cold persistent compilation cache
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
  with open(os.path.join(args.workdir, "predict", args.name, "summary.json")) as f:
    s = json.load(f)
  print(f"command : python benchmarks/mixed_folder.py --config={args.config} --workdir={args.workdir} (main.py at {commit})")
  print(f"machine : {cpu_name()}, {os.cpu_count()} cores")
  print(f"folder  : {n} JPEGs, {len(SIZES)} sizes ({PER_SIZE} each, 150x200 to 768x1024)")
  print(
    f"predict : {s['seconds']:.1f} s in predict ({wall:.1f} s with start-up), compile {s['compile_seconds']:.1f} s, "
    f"model {s['model_seconds']:.1f} s, {s['images_per_second']:.2f} photos/s, {s['crack']} flagged"
  )


if __name__ == "__main__":
  main()
