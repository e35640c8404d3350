# sourced by the device calls: the wheels crackjax needs that the machine's image lacks, and the shared settings
set -o pipefail
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
[ -n "$LOCAL" ] || [ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
C="${C:-configs/ddim_50.py:data=/tmp/data/concrete_pavement,large} $EXTRA"
W=${W:-/tmp/gpu_run}
A="--config.anomaly.smoothing_sigma=1.0 --config.anomaly.line_sigma=6.0 --config.anomaly.border=4 --config.anomaly.pyramid=2 --config.darkness.sigma=1.0"
run() { python3 benchmarks/gpu_harness/main_gpu.py "$@" 2>&1 | grep -v "^W" ; }
