#!/usr/bin/env bash
# The student table: a teacher's workdir and its root -> single-step, coarse-to-fine K = 1, 2, 3 and binary
# targets, all sharing one teacher-map cache (runs/<name>/ each), then the table. Usage:
#   bash benchmarks/students.sh TEACHER_WORKDIR ROOT [PREFIX]     (PREFIX default runs/student)
# EXTRA="--config.student.synthetic_cracks=1.0" adds config overrides to every student.
set -euo pipefail
cd "$(dirname "$0")/.."
teacher=$1
root=$2
prefix=${3:-runs/student}
cache=${CACHE:-"${prefix}_teacher_maps"}  # CACHE=DIR shares teacher maps computed before
run() {
  config=$1; workdir=$2; shift 2
  python main.py --config="configs/$config.py:data=$root" --workdir="$workdir" \
    --config.student.teacher_workdir="$teacher" --config.student.cache_dir="$cache" ${EXTRA:-} "$@"
}
run student_single_step "${prefix}_single_step"
run student_single_step "${prefix}_single_step_binary" --config.student.target=binary
for k in 1 2 3; do
  run student_coarse_to_fine "${prefix}_c2f_k$k" --config.student.stages=$k
done
python benchmarks/tables.py students "$teacher" "${prefix}"_*/
