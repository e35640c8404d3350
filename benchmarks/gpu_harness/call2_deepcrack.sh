# call 2 (2026-12-04): DeepCrack as it is, with the model call 1 trained (VARIANTS="") and the config's own score;
# concrete_pavement test is not scored again. Carry .devdata2 = deepcrack/{test,ground_truth,val/good}.
T0=$(date +%s)
mkdir -p /tmp/data && cp -r .devdata2/* /tmp/data/
. benchmarks/gpu_harness/common.sh
S=$(date +%s)
run --config=$C --workdir=$W --mode=evaluate --config.eval.root=/tmp/data/deepcrack --config.eval.name=deepcrack \
  --config.eval.batch_size=16 | tee $OUT/deepcrack.log | grep -E "val only|image AUROC|pixel|Error|Traceback" | tail -5
echo "deepcrack wall $(( $(date +%s) - S )) s"
cp $W/eval/deepcrack/metrics.json $OUT/metrics_deepcrack.json; cp $W/train_info.json $OUT/ 2>/dev/null
echo "call 2 total $(( $(date +%s) - T0 )) s"
