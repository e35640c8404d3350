"""The ae baseline (model kind 'ae', crackjax/baselines/ae.py), trained on train/good through the same
pipeline, checkpoints and evaluation as the diffusion teacher.

    python main.py --config=configs/ae.py:data=ROOT --workdir=runs/ae
    python main.py --config=configs/ae.py:tiny --workdir=/tmp/ae          # seconds, synthetic data

Writes metrics.json, scores.csv and plots/ like every kind; `--mode=predict` and `--mode=export` work on it.
"""

from configs import base


def customize(c):
  c.model.kind = "ae"
  c.anomaly.localization_darkness = 0.0  # docs/baselines.md measured the baselines on their image maps


def get_config(arg=None):
  return base.make_config(arg, customize)
