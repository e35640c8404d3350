#!/usr/bin/env bash
# Score-design ablation on a trained workdir: each line re-scores val and test with one setting changed
# (no retraining; results in WORKDIR/eval/<name>/), then prints the table. Usage:
#   bash benchmarks/ablation.sh [WORKDIR] [CONFIG]      (defaults: runs/ddim_50 configs/ddim_50.py)
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=${1:-runs/ddim_50}
config=${2:-configs/ddim_50.py}
run() { name=$1; shift; python main.py --config="$config" --workdir="$workdir" --mode=evaluate --config.eval.name="ablation_$name" "$@"; }
run default
run t_start_10 --config.anomaly.t_start=10
run t_start_50 --config.anomaly.t_start=50
run t_start_100 --config.anomaly.t_start=100
run t_start_200 --config.anomaly.t_start=200
run one_draw --config.anomaly.num_draws=1
run residual_darker --config.anomaly.residual=darker
run residual_sq --config.anomaly.residual=sq
run pooling_max --config.anomaly.pooling=max
run sigma_0 --config.anomaly.smoothing_sigma=0
run sigma_4 --config.anomaly.smoothing_sigma=4
python benchmarks/ablation_table.py "$workdir"
