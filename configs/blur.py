"""The teacher's map with a Gaussian blur in place of the diffusion healing (crackjax/baselines/blur.py): no
learning, every filter, pooling and decision as the teacher's. What the teacher scores above it is what the
diffusion model adds.

    python main.py --config=configs/blur.py:data=ROOT --workdir=runs/blur
"""

from configs import base


def customize(c):
  c.model.kind = "blur"


def get_config(arg=None):
  return base.make_config(arg, customize)
