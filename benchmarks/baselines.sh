#!/usr/bin/env bash
# The baselines table: the no-learning darkness floor, AE, VAE, MemAE and DRAEM trained on ROOT/train/good through
# the same main.py, data pipeline, evaluation and threshold rules as the diffusion teacher, then one table with the
# teacher (and a student) beside them. Usage:
#   bash benchmarks/baselines.sh ROOT [PREFIX]           (PREFIX default runs/base; workdirs PREFIX_<kind>)
# TEACHER=WORKDIR / STUDENT=WORKDIR add trained runs to the table (evaluated on the same ROOT if needed);
# STEPS=N sets every baseline's optimizer steps (default: configs/base.py baseline.num_steps); STEPS_<KIND>=N (e.g.
# STEPS_VAE=17300) one kind's, for the same wall-clock budget as the teacher (docs/baselines.md, 2026-12-02);
# EXTRA="..." adds config overrides to every baseline. Training seconds come from each workdir's training.json.
# EVAL=ROOT2 also scores every baseline as it is on ROOT2 (another source, e.g. DeepCrack: pixel AUROC / AUPRO from
# its masks) into <workdir>/eval/<basename of ROOT2>/ and writes a second table, PREFIX_table_<basename>.md, with
# TEACHER's and STUDENT's evaluations of the same name where they exist (run those with their own config and
# --config.eval.root=ROOT2 --config.eval.name=<basename>).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$1
prefix=${2:-runs/base}
kinds=(darkness ae vae memae draem)
steps_of() {  # the --config.baseline.num_steps override of one kind, if any
  local var="STEPS_${1^^}"
  local n=${!var:-${STEPS:-}}
  [[ -n "$n" ]] && echo "--config.baseline.num_steps=$n"
  return 0
}
dirs=()
for kind in "${kinds[@]}"; do
  echo "== $kind" >&2
  steps=($(steps_of "$kind"))
  python main.py --config="configs/$kind.py:data=$root" --workdir="${prefix}_$kind" "${steps[@]}" ${EXTRA:-}
  dirs+=("${prefix}_$kind")
done
[[ -n "${TEACHER:-}" ]] && dirs+=("$TEACHER")
[[ -n "${STUDENT:-}" ]] && dirs+=("$STUDENT")
python benchmarks/tables.py baselines "${dirs[@]}" | tee "${prefix}_table.md"
if [[ -n "${EVAL:-}" ]]; then
  name=$(basename "${EVAL%/}")
  evals=()
  for kind in "${kinds[@]}"; do
    echo "== $kind on $name" >&2
    steps=($(steps_of "$kind"))
    python main.py --config="configs/$kind.py:data=$root" --workdir="${prefix}_$kind" --mode=evaluate "${steps[@]}" ${EXTRA:-} \
      --config.eval.root="$EVAL" --config.eval.name="$name"
    evals+=("${prefix}_$kind/eval/$name")
  done
  for d in ${TEACHER:-} ${STUDENT:-}; do
    [[ -f "$d/eval/$name/metrics.json" ]] && evals+=("$d/eval/$name")
  done
  python benchmarks/tables.py baselines "${evals[@]}" | tee "${prefix}_table_${name}.md"
fi
