#!/usr/bin/env bash
# The baselines table: the no-learning darkness floor, AE, VAE, MemAE and DRAEM trained on ROOT/train/good through
# the same main.py, data pipeline, evaluation and threshold rules as the diffusion teacher, then one table with the
# teacher (and a student) beside them. Usage:
#   bash benchmarks/baselines.sh ROOT [PREFIX]           (PREFIX default runs/base; workdirs PREFIX_<kind>)
# TEACHER=WORKDIR / STUDENT=WORKDIR add trained runs to the table (evaluated on the same ROOT if needed);
# STEPS=N sets every baseline's optimizer steps (default: configs/base.py baseline.num_steps);
# EXTRA="..." adds config overrides to every baseline. Training seconds come from each workdir's training.json.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$1
prefix=${2:-runs/base}
steps=()
[[ -n "${STEPS:-}" ]] && steps=(--config.baseline.num_steps="$STEPS")
dirs=()
for kind in darkness ae vae memae draem; do
  echo "== $kind" >&2
  python main.py --config="configs/$kind.py:data=$root" --workdir="${prefix}_$kind" "${steps[@]}" ${EXTRA:-}
  dirs+=("${prefix}_$kind")
done
[[ -n "${TEACHER:-}" ]] && dirs+=("$TEACHER")
[[ -n "${STUDENT:-}" ]] && dirs+=("$STUDENT")
python benchmarks/baselines_table.py "${dirs[@]}" | tee "${prefix}_table.md"
