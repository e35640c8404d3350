"""DDIM healing on a 50-step schedule (eta = 0, deterministic): the default teacher.

    python main.py --config=configs/ddim_50.py --workdir=runs/ddim_50

Trains the epsilon-UNet on synthetic concrete (train/good), heals val and test images from t_start = 30 with the
2 DDIM steps of the 50-step schedule that lie below it (two noise draws), and writes runs/ddim_50/metrics.json,
scores.csv and plots/.
Run again, it reuses the checkpoint. On a real MVTec-layout folder: `configs/ddim_50.py:data=/path/to/root`.
"""

from configs import base


def customize(c):
  c.sampler.kind = "ddim"
  c.sampler.num_steps = 50
  c.sampler.eta = 0.0


def get_config(arg=None):
  return base.make_config(arg, customize)
