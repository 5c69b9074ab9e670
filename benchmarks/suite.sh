#!/usr/bin/env bash
# Re-measure the README's result tables in one go, as parallel processes on one machine (written for
# a lent GPU machine with many cores, where one process per method/shard shares the GPU).
#
#   bash benchmarks/suite.sh OUTDIR [SECONDS]
#
# Phase A (at once): the learning-rate sweep, one process per method (tune_methods.py, merged after);
# ROCR and ICU through the full audit with quantization attacks and relearning (audit_methods.py);
# ROCR on concepts outside the knowledge base (unseen_concepts.py); the curated-vs-generated
# validation on every built-in concept (elicit_validation.py, sharded).
# Phase B (once the sweep is merged): each trained baseline through the same audit at its chosen
# learning rate, and NPO on the unseen concepts. Every job saves after each concept and is stopped
# at the deadline, so a cut run still leaves every finished concept in OUTDIR.
set -u
OUT=${1:?usage: suite.sh OUTDIR [SECONDS]}
BUDGET=${2:-520}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
SCHEMES=${SCHEMES:-gguf-q8_0,gguf-q4_1,gguf-q4_0,rtn4}
SHARDS=${SHARDS:-6}
TRAINED=${TRAINED:-ga gd kl npo simnpo rmu rt}
# which parts run: tune (then the trained baselines' audits), audit (ROCR, ICU), unseen, validation,
# and quant: ROCR and the QUANT_METHODS at the shipped tuning's learning rates (docs/tuning.json)
# on 5 concepts with SCHEMES and relearning, without a new sweep
PARTS=${PARTS:-tune audit unseen validation}
QUANT_METHODS=${QUANT_METHODS:-rocr ga npo rmu}
has() { [[ " $PARTS " == *" $1 "* ]]; }
job() {  # job NAME CMD...: run in the background until the deadline, output in OUTDIR/NAME.log
  local name=$1
  shift
  timeout --signal=INT --kill-after=10 "$(left)" "$@" >"$OUT/$name.log" 2>&1 &
}

# the dense model is converted from its GGUF once, before parallel jobs want it
$PY -c "from formless.models import load_model; print(load_model('smollm2-135m-instruct').model.device)" \
  >"$OUT/warm.log" 2>&1 || { cat "$OUT/warm.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv >"$OUT/machine.txt" 2>&1
nproc >>"$OUT/machine.txt"

if has quant; then
  for m in $QUANT_METHODS; do
    job "quant_$m" $PY benchmarks/audit_methods.py --methods "$m" --concepts 5 --fast --quantize "$SCHEMES" \
      --relearn-steps 10 --lr-from docs/tuning.json --json "$OUT/quant_$m.json"
  done
fi
has tune || TRAINED=""
TUNE_PIDS=()
for m in $TRAINED; do
  timeout --signal=INT --kill-after=10 "${TUNE_SECONDS:-240}" \
    $PY benchmarks/tune_methods.py --methods "$m" --out "$OUT/tune_$m" >"$OUT/tune_$m.log" 2>&1 &
  TUNE_PIDS+=($!)
done
has audit || AUDITED=""
for m in ${AUDITED-rocr icu}; do
  job "audit_$m" $PY benchmarks/audit_methods.py --methods "$m" --concepts 5 --fast --quantize "$SCHEMES" \
    --relearn-steps 10 --json "$OUT/audit_$m.json"
done
has unseen && job unseen_rocr $PY benchmarks/unseen_concepts.py --methods rocr --fast --json "$OUT/unseen_rocr.json"
if has validation; then
  for i in $(seq 0 $((SHARDS - 1))); do
    job "validation_$i" $PY benchmarks/elicit_validation.py --shard "$i/$SHARDS" --fast \
      --json "$OUT/validation_$i.json"
  done
fi

[ ${#TUNE_PIDS[@]} -gt 0 ] && wait "${TUNE_PIDS[@]}"
sources=()
for m in $TRAINED; do [ -f "$OUT/tune_$m.json" ] && sources+=(--from "$OUT/tune_$m.json"); done
if [ ${#sources[@]} -gt 0 ]; then
  $PY benchmarks/tune_methods.py --methods "" "${sources[@]}" --out "$OUT/tuning" >"$OUT/tune_merge.log" 2>&1
fi
LR_FROM=()  # without a finished sweep the baselines run at their shipped defaults
[ -f "$OUT/tuning.json" ] && LR_FROM=(--lr-from "$OUT/tuning.json")
echo "phase B at $(($(date +%s) - START)) s, $(left) s left" >>"$OUT/machine.txt"

for m in $TRAINED; do
  job "audit_$m" $PY benchmarks/audit_methods.py --methods "$m" --concepts 5 --fast --quantize "$SCHEMES" \
    --relearn-steps 10 "${LR_FROM[@]}" --json "$OUT/audit_$m.json"
done
TUNING=$OUT/tuning.json
[ -f "$TUNING" ] || TUNING=docs/tuning.json  # no sweep in this run: the shipped one
NPO_LR=$($PY -c "import json; print(json.load(open('$TUNING'))['chosen']['npo']['lr'])" 2>/dev/null)
has unseen && job unseen_npo $PY benchmarks/unseen_concepts.py --methods npo --fast ${NPO_LR:+--lr "$NPO_LR"} \
  --json "$OUT/unseen_npo.json"
wait
echo "done at $(($(date +%s) - START)) s" >>"$OUT/machine.txt"
