"""The draem baseline (model kind 'draem', crackjax/baselines/draem.py), trained on train/good through the same
pipeline, checkpoints and evaluation as the diffusion teacher.

    python main.py --config=configs/draem.py:data=ROOT --workdir=runs/draem
    python main.py --config=configs/draem.py:tiny --workdir=/tmp/draem          # seconds, synthetic data

Writes metrics.json, scores.csv and plots/ like every kind; `--mode=predict` and `--mode=export` work on it.
"""

from configs import base


def customize(c):
  c.model.kind = "draem"
  c.anomaly.localization_darkness = 0.0  # docs/baselines.md measured the baselines on their image maps
  c.anomaly.update(pooling="max", smoothing_sigma=2.0)


def get_config(arg=None):
  return base.make_config(arg, customize)
