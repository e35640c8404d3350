# call 1: train the :large teacher on concrete_pavement train/good, then val only for the two score variants
# (VARIANTS="" trains only: the 2026-12-04 run, whose second call scores DeepCrack)
T0=$(date +%s)
mkdir -p /tmp/data && cp -r .devdata1/* /tmp/data/
[ -n "$LOCAL" ] || [ -d .whl ] || { echo "no wheels: see README.md here"; exit 1; }
. benchmarks/gpu_harness/common.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, orbax.checkpoint as o, ml_collections; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
S=$(date +%s)
timeout ${TRAIN_LIMIT:-330} bash -c "$(declare -f run); run --config=$C --workdir=$W --mode=train" | tee $OUT/train.log | grep -E "harness|Training|step [0-9]*000/|step 50/|Error|error|Traceback" | tail -30
echo "train rc ${PIPESTATUS[0]} wall $(( $(date +%s) - S )) s"
for v in ${VARIANTS-B A}; do
  S=$(date +%s); X=""; [ $v = A ] && X="$A"
  run --config=$C --workdir=$W --mode=evaluate --config.eval.test=False --config.eval.name=val_$v $X | tee $OUT/val_$v.log | grep -E "val only|Error|Traceback" | tail -3
  echo "val_$v wall $(( $(date +%s) - S )) s"
done
echo "call 1 total $(( $(date +%s) - T0 )) s"
