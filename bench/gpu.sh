#!/usr/bin/env bash
# The GPU runbook (README, "On GPUs"): on a freshly lent GPU machine, everything in a few calls.
#
#   SPANGPT_COMMIT=<commit> bash bench/gpu.sh [STAGE ...]      stages: setup smoke table bench (default: all)
#
# The machine has its own torch and no network: `setup` installs the rest from $WHEELS (make wheels
# on a networked machine; make setup-offline) into $VENV, beside that torch. Then:
#   smoke  each variant in each GPU precision (fp32, tf32, bf16), $SMOKE_STEPS steps, all at once;
#   table  SPEC's table on $DATA: 4 variants x {pretrained, no pretraining}, seed 0, bf16, the four
#          variants' sweeps at once on the one GPU, into one sweep folder;
#   bench  tokens/s per variant and precision, MFU, full-pretraining seconds, loader examples/s.
# Results go to $OUT (the device tool's folder, else gpu-out/): machine.json, smoke.json, bench.json,
# and runs.tar.gz, the table's run folders and logs without checkpoints or weights, from which the
# report is built on any machine: mkdir -p runs/gpu && tar -C runs/gpu -xzf runs.tar.gz &&
# python -m experiments.report runs/gpu/spec --predictions results.
# SCALE=tiny is the CPU rehearsal (.ci: CUDA_VISIBLE_DEVICES= on a synthetic world): the same stages
# with a few steps each.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
WHEELS=${WHEELS:-.whl}
DATA=${DATA:-datasets/birthplaces}
VENV=${VENV:-.venv-gpu}
TORCH_PYTHON=${TORCH_PYTHON:-python3}
RUNS=${RUNS:-runs/gpu}
SCALE=${SCALE:-full}
PY=$VENV/bin/python
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RUNS"

cores=$(nproc)
if [[ $SCALE == tiny ]]; then  # a 32-wide model, a few steps, two runs at a time: minutes on 2 cores
  SMALL=(model.n_embd=32 model.n_head=2)
  SMOKE_STEPS=${SMOKE_STEPS:-3}; BENCH_STEPS=${BENCH_STEPS:-6}; SMOKE_PARALLEL=${SMOKE_PARALLEL:-2}
  TABLE_SET=("${SMALL[@]}" train.max_steps=3 train.log_every=1 eval.max_new_tokens=8)
  TABLE_PRECISION=${TABLE_PRECISION:-fp32}
elif [[ $SCALE == full ]]; then
  SMALL=()
  SMOKE_STEPS=${SMOKE_STEPS:-100}; BENCH_STEPS=${BENCH_STEPS:-300}; SMOKE_PARALLEL=${SMOKE_PARALLEL:-12}
  TABLE_SET=()
  TABLE_PRECISION=${TABLE_PRECISION:-bf16}
else
  echo "error: SCALE=$SCALE: expected full or tiny" >&2; exit 2
fi
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(setup smoke table bench)

stage_setup() {
  if [[ ! -f $VENV/.installed ]]; then
    make --no-print-directory setup-offline WHEELS="$WHEELS" VENV="$VENV" PYTHON="$TORCH_PYTHON"
  fi
  "$PY" -m bench.gpu machine --out "$OUT"
}

stage_smoke() {
  "$PY" -m bench.gpu smoke --data "$DATA" --steps "$SMOKE_STEPS" --parallel "$SMOKE_PARALLEL" --out "$OUT" \
    --runs "$RUNS/smoke" ${SMALL[@]+--set "${SMALL[@]}"}
}

stage_table() {
  # one sweep folder, its four variants' sweeps at once (each skips what another finished), then
  # the whole grid once more, which finds every run done and writes the grid into sweep.json
  local sweep=(-m experiments.sweep configs --data "$DATA" --out "$RUNS/spec" --seeds 0 --procs 1
               --label "SPEC's table, one GPU" --set train.precision="$TABLE_PRECISION"
               data.workers=$(( cores / 4 > 1 ? cores / 4 - 1 : 0 )) "${TABLE_SET[@]}")
  local pids=() variant failed=0
  mkdir -p "$RUNS/spec-logs"
  for variant in vanilla synthesizer perceiver rope; do
    "$PY" "${sweep[@]}" --variants "$variant" > "$RUNS/spec-logs/$variant.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  "$PY" "${sweep[@]}" --variants vanilla synthesizer perceiver rope | tee "$RUNS/spec-logs/all.log" || failed=1
  tar -C "$RUNS" -czf "$OUT/runs.tar.gz" --exclude=checkpoints --exclude=export spec spec-logs
  return $failed
}

stage_bench() {
  "$PY" -m bench.gpu bench --data "$DATA" --steps "$BENCH_STEPS" --out "$OUT" --runs "$RUNS/bench" \
    --workers $(( cores > 2 ? cores / 2 : 1 )) ${SMALL[@]+--set "${SMALL[@]}"}
}

for stage in "${stages[@]}"; do
  case $stage in
    setup|smoke|table|bench) echo "== $stage"; "stage_$stage" ;;
    *) echo "error: bench/gpu.sh: unknown stage '$stage' (setup, smoke, table, bench)" >&2; exit 2 ;;
  esac
done
