"""The allowed values that config.validate checks, in one leaf module: the modules that use them import them from
here, and the config imports none of those modules (no import circles)."""

from __future__ import annotations

import dataclasses

KINDS = ("teacher", "student", "ae", "vae", "memae", "draem", "darkness", "blur")  # config.model.kind (crackjax/kinds.py)
STUDENT_ARCHITECTURES = ("single_step", "coarse_to_fine")  # student.architecture (crackjax/student.py)
STUDENT_TARGETS = ("soft", "binary")  # student.target
STUDENT_INPUT_STRIDES = (1, 2, 4)  # student.input_stride
DARKNESS_MAPS = ("relative", "tophat")  # darkness.map (crackjax/baselines/darkness.py)


@dataclasses.dataclass(frozen=True)
class StudentConfig:
  """The student network's shape (crackjax/student.py), from config.student."""

  architecture: str  # see STUDENT_ARCHITECTURES
  channels: int  # features at full resolution (2x below)
  stages: int  # K, coarse_to_fine only
  input_stride: int = 1  # the network sees s x s pixel blocks as channels (space to depth)

  @property
  def levels(self) -> list[int]:
    """Pyramid levels of the network's output maps, coarse to fine (level l is 1/2^l of its input's resolution)."""
    if self.architecture == "single_step":
      return [0]
    top = max(2, self.stages - 1)
    return list(range(top, top - self.stages, -1))

  @property
  def map_levels(self) -> list[int]:
    """The same maps' levels relative to the image (input_stride 2^j adds j)."""
    shift = self.input_stride.bit_length() - 1
    return [level + shift for level in self.levels]

  @property
  def depth(self) -> int:
    return 2 if self.architecture == "single_step" else max(2, self.stages - 1)

  @property
  def multiple(self) -> int:
    return 2**self.depth * self.input_stride
