"""Sampler x step-count sweep of a trained teacher (`--mode=sweep`): DDPM, DDIM eta = 0 and DDIM eta = 1 at
1, 2, 5, 10, 20, 50, 100, 250 and 1,000 healing steps (those the start step allows), on the test split.

    python main.py --config=configs/sweep_steps.py:data=ROOT --workdir=TEACHER_DIR --mode=sweep
    python main.py --config=configs/sweep_steps.py:cpu,data=ROOT --workdir=TEACHER_DIR --mode=sweep   # CPU variant

TEACHER_DIR is a teacher's workdir (trained with configs/ddim_50.py and the same data argument); results go to
TEACHER_DIR/sweep/<sweep.name>/. `:cpu` keeps 1-20 steps and 100 test images (under 30 minutes on 2 CPU cores
for the real-data teacher); the full grid is for a GPU or TPU.
"""

from configs import base


def customize(c):
  c.sampler.kind = "ddim"
  c.sampler.num_steps = 50


def customize_cpu(c):
  customize(c)
  c.sweep.name = "steps_cpu"
  c.sweep.steps = (1, 2, 5, 10, 20)
  c.sweep.max_images = 100


def get_config(arg=None):
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  cpu = "cpu" in parts
  return base.make_config(",".join(p for p in parts if p != "cpu"), customize_cpu if cpu else customize)
