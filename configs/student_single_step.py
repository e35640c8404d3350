"""The single-step student: one forward pass of a small fully convolutional network predicts the teacher's map.

    python main.py --config=configs/student_single_step.py --workdir=runs/student_single_step
    python main.py --config=configs/student_single_step.py:data=ROOT --workdir=DIR \\
        --config.student.teacher_workdir=TEACHER_DIR

Without a teacher workdir the DDIM-50 teacher is trained and evaluated first in <workdir>/teacher. The teacher
scores the pool (train/good + unlabeled) once; the maps are cached in <workdir>/teacher_maps/.
"""

from configs import base


def customize(c):
  c.model.kind = "student"
  c.student.architecture = "single_step"


def get_config(arg=None):
  return base.make_config(arg, customize)
