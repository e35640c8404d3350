# call 2: test once with the variant chosen on val, then DeepCrack as it is
T0=$(date +%s)
cp -r .devdata2/* /tmp/data/
. benchmarks/gpu_harness/common.sh
V=$(python3 -c "
import json
a = {v: json.load(open('$W/eval/val_%s/metrics.json' % v))['val']['auroc'] for v in 'AB'}
print('A' if a['A'] > a['B'] else 'B')")
echo "chosen on val: $V"; X=""; [ $V = A ] && X="$A"
S=$(date +%s)
run --config=$C --workdir=$W --mode=evaluate $X | tee $OUT/test.log | grep -E "image AUROC|Error|Traceback" | tail -3
echo "test wall $(( $(date +%s) - S )) s"
S=$(date +%s)
run --config=$C --workdir=$W --mode=evaluate --config.eval.root=/tmp/data/deepcrack --config.eval.name=deepcrack --config.eval.batch_size=16 $X | tee $OUT/deepcrack.log | grep -E "image AUROC|Error|Traceback" | tail -3
echo "deepcrack wall $(( $(date +%s) - S )) s"
cp $W/metrics.json $OUT/metrics_test.json; cp $W/eval/deepcrack/metrics.json $OUT/metrics_deepcrack.json
cp $W/eval/val_A/metrics.json $OUT/metrics_val_A.json; cp $W/eval/val_B/metrics.json $OUT/metrics_val_B.json; cp $W/train_info.json $OUT/ 2>/dev/null
echo "call 2 total $(( $(date +%s) - T0 )) s"
