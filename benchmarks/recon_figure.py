"""The same test images reconstructed by each trained reconstruction model (AE, VAE, MemAE, DRAEM; and the
diffusion teacher's healing where its workdir is given), with each model's anomaly map: the research plan's
"identity mapping" and "blurry AE" claims, shown. Run by hand after benchmarks/baselines.sh:

    python benchmarks/recon_figure.py --root=ROOT --out=docs/images/reconstructions.png WORKDIR...

Images: the first --n cracked test images (sorted by name), at the workdirs' working resolution.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def load_config(workdir: str):
  """The config a workdir was trained with (its config.json over today's defaults)."""
  from configs import base
  from crackjax.config import config_from_saved

  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  return config_from_saved(base.defaults(), saved, sections=tuple(k for k in saved if isinstance(saved[k], dict)))


def reconstruct(workdir: str, x):
  """(reconstruction in [-1, 1], anomaly map) of a batch x [B, H, W, 3] by the model trained in workdir."""
  import jax
  import jax.numpy as jnp

  from crackjax import kinds
  from crackjax import teacher as teacher_lib
  from crackjax import train as train_lib

  c = load_config(workdir)
  kind = c.model.kind
  scorer = kinds.get(kind).make_scorer(c, workdir)
  ids = jnp.arange(x.shape[0])
  amap = scorer.maps(scorer.params, x, jax.random.PRNGKey(0), ids)
  if kind == "teacher":
    state = train_lib.load_trained(c, workdir)
    healed, _ = teacher_lib.make_heal_fn(c, state.ema_params)(x, ids)
    return healed, amap
  module = __import__(f"crackjax.baselines.{kind}", fromlist=["spec"])
  spec = module.spec()
  net = spec.net(c)
  out = net.apply({"params": scorer.params}, x, train=False, rngs={"z": jax.random.PRNGKey(0)})
  return out["recon"], amap


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--root", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--n", type=int, default=4)
  p.add_argument("--side", type=int, default=80, help="centre crop side at the working resolution (divisible by 8)")
  p.add_argument("workdirs", nargs="+")
  args = p.parse_args()
  import jax.numpy as jnp
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  from crackjax.data import builders, pipeline

  c0 = load_config(args.workdirs[0])
  data_dir = c0.data.tfds_dir or os.path.join(args.workdirs[0], "tfds")
  b = builders.make_builder(root=args.root, data_dir=data_dir, val_fraction=c0.data.val_fraction)
  test = pipeline.load_split(b, "test", resize=c0.data.resize)
  idx = [i for i in range(len(test)) if test.labels[i] == 1][: args.n]
  s = args.side
  crops = []
  for i in idx:
    img = test.images[i]
    h, w = img.shape[:2]
    y, x0 = max(0, (h - s) // 2), max(0, (w - s) // 2)
    crops.append(np.asarray(pipeline.to_model_range(img[y : y + s, x0 : x0 + s])))
  x = jnp.asarray(np.stack(crops))
  rows = [("input", (x + 1) / 2, None)]
  for wd in args.workdirs:
    r, m = reconstruct(wd, x)
    rows.append((load_config(wd).model.kind, (np.asarray(r) + 1) / 2, np.asarray(m)))
  fig, axes = plt.subplots(args.n, 1 + 2 * (len(rows) - 1), figsize=(1.6 * (1 + 2 * (len(rows) - 1)), 1.7 * args.n))
  for j in range(args.n):
    col = 0
    for name, imgs, maps in rows:
      ax = axes[j, col]
      ax.imshow(np.clip(imgs[j], 0, 1))
      ax.set_title(name if j == 0 else "", fontsize=8)
      col += 1
      if maps is not None:
        axes[j, col].imshow(maps[j], cmap="inferno")
        axes[j, col].set_title(f"{name} map" if j == 0 else "", fontsize=8)
        col += 1
  for ax in axes.ravel():
    ax.axis("off")
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fig.savefig(args.out, dpi=110)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
