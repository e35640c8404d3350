#!/usr/bin/env bash
# The research plan's questions, CPU variants (each step under 30 minutes on 2 cores), on a trained real-data
# teacher. Usage:
#   bash benchmarks/research_cpu.sh TEACHER_WORKDIR ROOT [OTHER_ROOT] [PREFIX]
# TEACHER_WORKDIR was trained by `python main.py --config=configs/ddim_50.py:data=ROOT --workdir=TEACHER_WORKDIR`;
# OTHER_ROOT (default ../shared/data/deepcrack) is the domain-shift root; PREFIX (default runs/research) names the
# student and toy workdirs. CACHE=DIR reuses the teacher maps of benchmarks/students.sh for the K = 4 student.
set -euo pipefail
cd "$(dirname "$0")/.."
teacher=$1
root=$2
other=${3:-../shared/data/deepcrack}
prefix=${4:-runs/research}
# 1. Samplers x healing steps (DDPM, DDIM eta 0 and 1; 1-20 steps; 100 test images), and pixel metrics on OTHER_ROOT.
python main.py --config="configs/sweep_steps.py:cpu,data=$root" --workdir="$teacher" --mode=sweep
python main.py --config="configs/sweep_steps.py:cpu,data=$root" --workdir="$teacher" --mode=sweep --config.eval.root="$other" \
  --config.sweep.name=steps_cpu_other --config.sweep.max_images=24 '--config.sweep.steps=(1,2,5,10)'
# 2. Students from DDPM-teacher and DDIM-teacher maps (5 healing steps, 600 pool images, same student), two seeds
#    each, evaluated on ROOT and OTHER_ROOT.
for s in ddpm ddim_eta0; do
  for seed in 0 1; do
    flags=(--config="configs/student_coarse_to_fine.py:data=$root" --workdir="${prefix}_student_from_${s}_seed$seed"
      --config.student.teacher_workdir="$teacher" --config.student.stages=2 --config.student.teacher_sampler=$s
      --config.student.teacher_heal_steps=5 --config.student.max_pool_images=600 --config.seed=$seed
      --config.student.cache_dir="${prefix}_teacher_maps_5steps")
    python main.py "${flags[@]}"
    python main.py "${flags[@]}" --mode=evaluate --config.eval.root="$other"
  done
done
python benchmarks/tables.py students "$teacher" "${prefix}"_student_from_*/
# 3. Coarse-to-fine with K = 4 (K = 1..3 and single-step: benchmarks/students.sh).
python main.py --config="configs/student_coarse_to_fine.py:data=$root" --workdir="${prefix}_c2f_k4" \
  --config.student.teacher_workdir="$teacher" --config.student.stages=4 \
  --config.student.cache_dir="${CACHE:-${prefix}_teacher_maps}"
# 4. Memorization: the teacher's membership probe (with a 16-photo positive control), and the toy DDPM on crack
#    skeletons (all 1,000 and 64 training skeletons).
python benchmarks/teacher_memorization.py --workdir="$teacher" --data="$root" --control_workdir="${prefix}_memorization_control" \
  --out="${prefix}_memorization"
python main.py --config=configs/toy_skeleton.py --workdir="${prefix}_toy_skeleton" --mode=toy
python main.py --config=configs/toy_skeleton.py --workdir="${prefix}_toy_skeleton_64" --mode=toy --config.toy.num_train=64
# 5. Failure kinds, with domain shift to OTHER_ROOT.
python main.py --config="configs/ddim_50.py:data=$root" --workdir="$teacher" --mode=evaluate --config.eval.root="$other"
python main.py --config="configs/ddim_50.py:data=$root" --workdir="$teacher" --mode=failures
