"""The no-learning floor (model kind 'darkness'): how dark the darkest 0.1% of the smoothed luminance is,
relative to the image's median. Nothing is trained; it is evaluated like any model.

    python main.py --config=configs/darkness.py:data=ROOT --workdir=runs/darkness

`--config.darkness.map=tophat` scores the black top-hat map instead (dark structures narrower than
darkness.tophat_size pixels).
"""

from configs import base


def customize(c):
  c.model.kind = "darkness"
  c.anomaly.localization_darkness = 0.0  # docs/baselines.md measured the baselines on their image maps
  # the floor as measured (docs/baselines.md): the whole map, whatever frame the real-data score leaves out
  c.anomaly.update(pooling="topk", topk_fraction=0.001, smoothing_sigma=0.0, line_sigma=0.0, border=0)


def get_config(arg=None):
  return base.make_config(arg, customize)
