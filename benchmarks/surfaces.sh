#!/usr/bin/env bash
# One table per surface: each surface's own model (the shipped concrete teacher fine-tuned on its sound photos,
# configs/new_surface.py), the concrete_pavement teacher zero-shot, and beside both the no-learning rows (the
# darkness floor, and the teacher's map around a Gaussian blur instead of the healing), each as the user receives
# it: the verdicts and red masks `--mode=predict` writes at the shipped settings, scored against the surface's masks.
#
#   bash benchmarks/surfaces.sh CP_WORKDIR [DATA] [PREFIX]
#
# CP_WORKDIR: the concrete_pavement teacher (the README's real-data command); DATA (default ../shared/data) holds
# concrete_pavement and the surfaces (SURFACES, default "deepcrack sut"), each with train/good and test/crack with
# masks; PREFIX (default runs/surfaces) receives each surface's root with 20% of its sound crops held out as
# test/good (benchmarks/surface_root.py) and every workdir. Ends with PREFIX/table.md (benchmarks/tables.py surfaces).
set -euo pipefail
cd "$(dirname "$0")/.."
cp_workdir=$1
data=${2:-../shared/data}
prefix=${3:-runs/surfaces}
cp_root=$data/concrete_pavement
mkdir -p "$prefix"
run() { echo "+ python main.py $*" >&2; python main.py "$@"; }
predict() {  # workdir, config, surface root, name: the held-out sound crops and the cracked photos, masks scored
  run --config="$2" --workdir="$1" --mode=predict --config.predict.input="$3/test" --config.predict.name="$4" \
    --config.predict.masks="$3/ground_truth/crack" --config.predict.overlays=flagged --config.predict.redo=True
}
# the no-learning rows on concrete_pavement itself: their threshold and red mask chosen on its val
for kind in darkness blur; do
  run --config="configs/$kind.py:data=$cp_root" --workdir="$prefix/cp_$kind"
done
for s in ${SURFACES:-deepcrack sut}; do
  root=$prefix/$s
  python benchmarks/surface_root.py "$data/$s" "$root"
  # its own: the fine-tuned teacher and the no-learning rows, every choice made on its own sound photos
  run --config="configs/new_surface.py:data=$root" --workdir="$prefix/${s}_teacher"
  predict "$prefix/${s}_teacher" "configs/new_surface.py:data=$root" "$root" test
  for kind in darkness blur; do
    run --config="configs/$kind.py:data=$root" --workdir="$prefix/${s}_$kind"
    predict "$prefix/${s}_$kind" "configs/$kind.py:data=$root" "$root" test
  done
  # zero-shot: concrete_pavement's models as they are
  run --config="configs/ddim_50.py:data=$cp_root" --workdir="$cp_workdir" --mode=evaluate --config.eval.root="$root"
  predict "$cp_workdir" "configs/ddim_50.py:data=$cp_root" "$root" "$s"
  for kind in darkness blur; do
    run --config="configs/$kind.py:data=$cp_root" --workdir="$prefix/cp_$kind" --mode=evaluate --config.eval.root="$root"
    predict "$prefix/cp_$kind" "configs/$kind.py:data=$cp_root" "$root" "$s"
  done
done
python benchmarks/tables.py surfaces "$cp_workdir" "$prefix" ${SURFACES:-deepcrack sut} | tee "$prefix/table.md"
