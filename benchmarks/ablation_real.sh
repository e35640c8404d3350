#!/usr/bin/env bash
# Score-design ablation on real data: re-scores a workdir trained with `configs/ddim_50.py:data=ROOT`, one
# setting changed from the real-data defaults per line (no retraining; results in WORKDIR/eval/ablation_<name>/),
# on the first MAX val and test images (good and cracked alternating), then prints the table. Usage:
#   MAX=400 bash benchmarks/ablation_real.sh WORKDIR ROOT
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=$1
root=$2
max=${MAX:-400}
run() {
  name=$1; shift
  python main.py --config="configs/ddim_50.py:data=$root" --workdir="$workdir" --mode=evaluate \
    --config.eval.name="ablation_$name" --config.eval.max_images="$max" "$@"
}
run default
run t_start_50 --config.anomaly.t_start=50
run t_start_200 --config.anomaly.t_start=200
run ddim_5_steps --config.anomaly.heal_steps=0
run channels_mean --config.anomaly.channels=mean
run pooling_topk --config.anomaly.pooling=topk
run pooling_topk_mad --config.anomaly.pooling=topk_mad
run topk_1pct --config.anomaly.topk_fraction=0.01
python benchmarks/ablation_table.py "$workdir"
