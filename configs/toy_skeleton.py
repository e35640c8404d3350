"""Does diffusion memorize pixels or learn structure? A small DDPM on 32x32 crack skeletons (crackjax/toy.py).

    python main.py --config=configs/toy_skeleton.py --workdir=runs/toy_skeleton --mode=toy
    python main.py --config=configs/toy_skeleton.py --workdir=runs/toy_heatmap --mode=toy --config.toy.target=heatmap

Trains on 1,000 skeletons from the synthetic crack model over all T = 1,000 noise levels, generates 256 with
100-step (strided) DDPM, and writes forward.png, reverse.png, samples.png, nearest.png, memorization.png and
toy.json (nearest-neighbour distances to the training set against an equal held-out set) into the workdir.
`--config.toy.num_train=64` shows what a small training set does.
"""

from configs import base


def customize(c):
  c.model.update(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, num_groups=8)
  c.train.update(num_steps=3000, batch_size=32, learning_rate=2e-3, t_min=0, t_max=999, checkpoint_every=500, log_every=100)
  c.sampler.update(kind="ddpm", num_steps=100, eta=0.0)


def get_config(arg=None):
  return base.make_config(arg, customize)
