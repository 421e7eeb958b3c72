#!/usr/bin/env bash
# The GPU runbook (docs/gpu.md): a lent GPU's work in two calls, the most valuable figures first.
#
#   SPANGPT_COMMIT=<commit> bash bench/gpu.sh [STAGE[:SECONDS] ...]
#
#   call 1 (default, at most 9 minutes):  setup smoke spec bench
#   call 2:                               setup rest
#
# The machine has its own torch (the GPU image: Python 3.12, torch 2.11, no make, no network):
#   setup  installs the rest from $WHEELS into $VENV beside that torch (python -m install.offline), once
#          per machine; machine.json (versions, nvidia-smi);
#   smoke  every variant in fp32, tf32, bf16 and fp16 for $SMOKE_STEPS steps, all at once, each run
#          checking that its Linear layers compute in its precision's dtype, on NCCL with fused AdamW
#          and pinned copies from data.workers; and a ZeRO-1 run resumed through the universal
#          checkpoint at world size 1, in fp16 (the ZeRO optimizers' loss scale; smoke.json);
#   spec   SPEC's full pretraining, finetuning and dev accuracy for vanilla and rope, bf16, at once on
#          the one GPU (runs.tar.gz);
#   bench  tokens/s and MFU per variant, bf16 first, then fp32, tf32, fp16; full-pretraining seconds;
#          loader examples/s (bench.json);
#   rest   the rest of SPEC's table: synthesizer and perceiver pretrained, and all four without
#          pretraining (runs.tar.gz; on a fresh machine call 1's runs are not there: the report takes
#          both archives' spec/ folders, extracted into one).
# Each stage has a time box (STAGE:SECONDS overrides the default below) and writes to $OUT as it goes:
# the Python stages stop starting runs that cannot finish and rewrite their JSON after every row; a
# sweep still running at its box gets SIGTERM, so each training run saves a checkpoint (resumed by a
# later call on the same machine, while it is still warm), and the archive and sweep.json are written in
# any case. $OUT is the device tool's folder (else gpu-out/).
# Back on any machine: mkdir -p runs/gpu && tar -C runs/gpu -xzf runs.tar.gz &&
# python -m experiments.report runs/gpu/spec --predictions results.
# SCALE=tiny is the CPU rehearsal (tests/test_gpu_runbook.py: CUDA_VISIBLE_DEVICES= on a synthetic
# world): the same stages with a few steps each.
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

# Default time boxes (seconds): call 1 sums to 525 s, inside the 9 minutes a call may take.
declare -A BUDGET=([setup]=60 [smoke]=90 [spec]=285 [bench]=90 [rest]=500)
cores=$(nproc)
workers=$(( cores / 4 > 1 ? cores / 4 - 1 : 1 ))  # per run, when several runs share the machine
if [[ $SCALE == tiny ]]; then  # a 32-wide model, a few steps, two runs at a time: minutes on 2 cores
  SMALL=(model.n_embd=32 model.n_head=2)
  SMOKE_STEPS=${SMOKE_STEPS:-4}; BENCH_STEPS=${BENCH_STEPS:-6}; SMOKE_PARALLEL=${SMOKE_PARALLEL:-2}
  BENCH_PRECISIONS=${BENCH_PRECISIONS:-bf16 fp32}  # the smoke ran all four; the bench's order is what is rehearsed
  TABLE_SET=("${SMALL[@]}" train.max_steps=3 train.log_every=1 eval.max_new_tokens=8)
  TABLE_PRECISION=${TABLE_PRECISION:-fp32}
  BUDGET=([setup]=600 [smoke]=600 [spec]=600 [bench]=600 [rest]=900)
elif [[ $SCALE == full ]]; then
  SMALL=()
  SMOKE_STEPS=${SMOKE_STEPS:-30}; BENCH_STEPS=${BENCH_STEPS:-300}; SMOKE_PARALLEL=${SMOKE_PARALLEL:-17}
  BENCH_PRECISIONS=${BENCH_PRECISIONS:-}  # empty: every precision, bench.gpu's order (bf16 first)
  TABLE_SET=()
  TABLE_PRECISION=${TABLE_PRECISION:-bf16}
else
  echo "error: SCALE=$SCALE: expected full or tiny" >&2; exit 2
fi
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(setup smoke spec bench)

stage_setup() {
  if [[ ! -f $VENV/.installed ]]; then
    "$TORCH_PYTHON" -m install.offline --wheels "$WHEELS" --venv "$VENV"
  fi
  "$PY" -m bench.gpu machine --out "$OUT"
}

stage_smoke() {
  timeout --kill-after=5 $(( $1 + 15 )) "$PY" -m bench.gpu smoke --data "$DATA" --steps "$SMOKE_STEPS" --parallel "$SMOKE_PARALLEL" --out "$OUT" \
    --runs "$RUNS/smoke" --workers 1 --budget "$1" ${SMALL[@]+--set "${SMALL[@]}"}
}

# SPEC's table into one sweep folder: one sweep per (variant, setting) at once (the GPU-bound runs
# share the GPU), boxed 25 s short of the stage's box; then the trainers' last checkpoints; then the
# whole grid's sweep.json (--plan: validates and records, runs nothing), so the report sees every
# variant even when the box cut a sweep; then the archive.
sweep_table() {
  local budget=$1; shift  # then variant:setting pairs
  local sweep=(-m experiments.sweep configs --data "$DATA" --out "$RUNS/spec" --seeds 0 --procs 1
               --label "SPEC's table, one GPU" --set train.precision="$TABLE_PRECISION"
               data.workers=$workers "${TABLE_SET[@]}")
  local pids=() pair failed=0 variants=() settings=()
  mkdir -p "$RUNS/spec-logs"
  for pair in "$@"; do
    variants+=("${pair%%:*}"); settings+=("${pair#*:}")
    timeout --kill-after=5 $(( budget > 40 ? budget - 25 : budget )) "$PY" "${sweep[@]}" \
      --variants "${pair%%:*}" --settings "${pair#*:}" > "$RUNS/spec-logs/${pair/:/-}.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  # A box's SIGTERM reaches the trainers too (timeout signals its whole process group): each saves a
  # checkpoint at its next step, which a later call on the same (still warm) machine resumes. Wait
  # for those saves: the call's end kills whatever is still running.
  local waited=0
  while command -v pgrep >/dev/null && pgrep -f "$RUNS/spec/" >/dev/null && (( waited < 20 )); do
    sleep 1; waited=$(( waited + 1 ))
  done
  local all_variants all_settings
  all_variants=$(printf '%s\n' "${variants[@]}" | awk '!seen[$0]++' | tr '\n' ' ')
  all_settings=$(printf '%s\n' "${settings[@]}" | awk '!seen[$0]++' | tr '\n' ' ')
  # shellcheck disable=SC2086  # word lists on purpose
  "$PY" "${sweep[@]}" --variants $all_variants --settings $all_settings --plan > "$RUNS/spec-logs/plan.log" 2>&1 \
    || failed=1
  { tar -C "$RUNS" -czf "$OUT/runs.tar.gz.tmp" --exclude=checkpoints --exclude=export spec spec-logs \
      && mv "$OUT/runs.tar.gz.tmp" "$OUT/runs.tar.gz"; } || failed=1
  return $failed
}

stage_spec() { sweep_table "$1" vanilla:pretrained rope:pretrained; }

# The rest of SPEC's table. On a fresh machine (the usual case: a warm one is given back 30 s after a
# call) nothing of call 1's runs is here but the archive's records, so this trains what call 1 did not.
stage_rest() {
  sweep_table "$1" synthesizer:pretrained perceiver:pretrained \
    vanilla:scratch rope:scratch synthesizer:scratch perceiver:scratch
}

stage_bench() {
  timeout --kill-after=5 $(( $1 + 15 )) "$PY" -m bench.gpu bench --data "$DATA" --steps "$BENCH_STEPS" --out "$OUT" --runs "$RUNS/bench" \
    --workers $(( cores > 2 ? cores / 2 : 1 )) --budget "$1" ${BENCH_PRECISIONS:+--precisions $BENCH_PRECISIONS} ${SMALL[@]+--set "${SMALL[@]}"}
}

status=0
for request in "${stages[@]}"; do
  stage=${request%%:*}
  case $stage in
    setup|smoke|spec|bench|rest) ;;
    *) echo "error: bench/gpu.sh: unknown stage '$stage' (setup, smoke, spec, bench, rest)" >&2; exit 2 ;;
  esac
  budget=${BUDGET[$stage]}
  [[ $request == *:* ]] && budget=${request#*:}
  if ! [[ $budget =~ ^[0-9]+$ ]]; then
    echo "error: bench/gpu.sh: $request: the time box must be whole seconds" >&2; exit 2
  fi
  echo "== $stage (time box ${budget} s)"
  started=$SECONDS
  if [[ $stage == setup ]]; then
    timeout --kill-after=10 "$budget" bash -c "$(declare -f stage_setup); $(declare -p VENV TORCH_PYTHON WHEELS PY OUT); stage_setup" || status=1
    [[ -f $VENV/.installed ]] || { echo "error: bench/gpu.sh: setup did not finish" >&2; exit 1; }
  else
    "stage_$stage" "$budget" || status=1
  fi
  echo "== $stage took $(( SECONDS - started )) s"
done
exit $status
