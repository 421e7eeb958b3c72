# Shared by pretrain.sh, finetune.sh and evaluate.sh (sourced inside the batch job).
#
# Launch: srun starts one torchrun per node; the torchruns meet in a c10d rendezvous on the first
# node and start one training process per GPU (or, on nodes without GPUs, one per CPU task: the
# job's --ntasks-per-node). Chosen over DeepSpeed's launcher because it needs no ssh/pdsh or
# hostfile between nodes, and torchrun restarts failed workers (--max-restarts).
#
# Preemption: the job is requeueable and asks SLURM for USR1 before its time limit. The trap passes
# it to every training process as SIGTERM (the same signal scancel sends); the trainers agree on a
# step, save a checkpoint and exit; the job then requeues itself and resumes from that checkpoint.

set -uo pipefail
SPANGPT_HOME=${SPANGPT_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$SPANGPT_HOME" || exit 1
PY=${SPANGPT_PYTHON:-$SPANGPT_HOME/.venv/bin/python}
export DS_ACCELERATOR=${DS_ACCELERATOR:-$(nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)}

# Split "config files... [--set key=value ...]" into CONFIGS and OVERRIDES.
parse_phase_args() {
  CONFIGS=(); OVERRIDES=()
  local in_set=0
  for arg in "$@"; do
    if [[ $arg == --set ]]; then in_set=1
    elif (( in_set )); then OVERRIDES+=("$arg")
    else CONFIGS+=("$arg")
    fi
  done
}

head_address() {
  local head
  head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  scontrol show node "$head" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2
}

on_preempt() {
  PREEMPTED=1
  echo "spangpt: job $SLURM_JOB_ID got the time-limit warning; checkpointing before requeue"
  scancel --signal=TERM "${SLURM_JOB_ID}.${STEP_ID:-0}"
}

# run_phase DEFAULT_CONFIG [configs...] [--set key=value ...]
run_phase() {
  local default_config=$1; shift
  parse_phase_args "$@"
  (( ${#CONFIGS[@]} )) || CONFIGS=("$default_config")
  local set_args=()
  (( ${#OVERRIDES[@]} )) && set_args=(--set "${OVERRIDES[@]}")
  RUN_DIR=$("$PY" -m launcher.resolve run_dir --config "${CONFIGS[@]}" "${set_args[@]}") || exit 2
  mkdir -p "$RUN_DIR/slurm"
  local run_dir_abs; run_dir_abs=$(cd "$RUN_DIR" && pwd -P)
  if [[ $(readlink -f "/proc/$$/fd/1" 2>/dev/null) != "$run_dir_abs"/* ]]; then  # per-job log in the run dir
    exec > >(tee -a "$RUN_DIR/slurm/${SLURM_JOB_NAME:-job}-${SLURM_JOB_ID}.log") 2>&1
  fi

  local nodes=${SLURM_JOB_NUM_NODES:-1} procs gpus=${SLURM_GPUS_ON_NODE:-0}
  if (( gpus > 0 )); then procs=$gpus
  else procs=${SLURM_NTASKS_PER_NODE:-1}; procs=${procs%%(*}
  fi
  # Threads per process from the job's CPUs, not the machine's: nodes can be shared (and on the
  # emulated cluster both "nodes" are one machine), where oversubscribing cores costs 6x here.
  if [[ -n ${SLURM_CPUS_PER_TASK:-} && -z ${OMP_NUM_THREADS:-} ]]; then
    export OMP_NUM_THREADS=$(( SLURM_CPUS_PER_TASK / procs > 0 ? SLURM_CPUS_PER_TASK / procs : 1 ))
  fi
  local port=$(( 20000 + SLURM_JOB_ID % 20000 ))
  echo "spangpt: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) $nodes node(s) x $procs process(es) on" \
       "${DS_ACCELERATOR}; run_dir $RUN_DIR"

  PREEMPTED=0
  trap on_preempt USR1
  trap 'echo "spangpt: job $SLURM_JOB_ID cancelled; the trainers save a checkpoint"' TERM  # keep relaying their output
  srun --ntasks="$nodes" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    "$PY" -m torch.distributed.run --nnodes="$nodes" --nproc_per_node="$procs" \
      --rdzv_backend=c10d --rdzv_endpoint="$(head_address):$port" --rdzv_id="$SLURM_JOB_ID" \
      launcher/train.py --config "${CONFIGS[@]}" "${set_args[@]}" &
  local srun_pid=$!
  STEP_ID=0
  local status=0
  while true; do  # a trapped signal interrupts wait; keep waiting for the training step
    wait "$srun_pid"; status=$?
    kill -0 "$srun_pid" 2>/dev/null || break
  done
  if (( PREEMPTED )); then
    echo "spangpt: requeueing job $SLURM_JOB_ID; it resumes from $RUN_DIR/checkpoints"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  exit "$status"
}
