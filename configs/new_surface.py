"""A new surface from its own sound photos, in minutes: the shipped concrete teacher (crackjax/weights/) fine-tuned
on ROOT/train/good, then every automatic choice (the threshold, the red mask) made on the surface's own photos.

    python main.py --config=configs/new_surface.py:data=/path/to/ROOT --workdir=runs/site

ROOT needs train/good (150-300 sound photos are enough); without val/, 10% of them are held out to choose the
threshold and the red mask on. Prints the training's progress, then the evaluation's figures where ROOT has a
test/ folder, and writes the workdir as `configs/ddim_50.py:data=...` does (predict, export and the rest take
the same --config and --workdir).
"""

from configs import base


def customize(c):
  c.sampler.update(kind="ddim", num_steps=50, eta=0.0)
  # at most 600 steps (about 8 minutes on 2 cores); every 100 the model is scored on val's sound photos against
  # their synthetic-cracked copies, and after 2 checkpoints without a gain the best one (the teacher itself when
  # fine-tuning never beats it) is the model
  c.train.update(
    init_from="concrete_pavement", num_steps=600, learning_rate=1e-3, warmup_steps=20, checkpoint_every=100, patience=2
  )


def get_config(arg=None):
  return base.make_config(arg, customize)
