"""DDPM ancestral sampling on the full 1000-step schedule: every timestep from t_start down to 0.

    python main.py --config=configs/ddpm_1000.py --workdir=runs/ddpm_1000

Same model and training as configs/ddim_50.py; healing runs t_start + 1 = 31 stochastic steps per image and draw,
15 times the network evaluations of DDIM-50 at the same start step.
"""

from configs import base


def customize(c):
  c.sampler.kind = "ddpm"
  c.sampler.num_steps = 1000


def get_config(arg=None):
  return base.make_config(arg, customize)
