"""The coarse-to-fine student: a coarse map at 1/4 resolution, refined over K stages, each a level finer and
conditioned on the previous map (`--config.student.stages=K`, default 3).

    python main.py --config=configs/student_coarse_to_fine.py --workdir=runs/student_c2f
    python main.py --config=configs/student_coarse_to_fine.py:data=ROOT --workdir=DIR \\
        --config.student.teacher_workdir=TEACHER_DIR

Teacher, pool and cache as in configs/student_single_step.py.
"""

from configs import base


def customize(c):
  c.model.kind = "student"
  c.student.architecture = "coarse_to_fine"


def get_config(arg=None):
  return base.make_config(arg, customize)
