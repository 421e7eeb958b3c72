# run_phase, shared by pretrain.sh, finetune.sh and evaluate.sh (sourced inside the batch job).
#
# Launch: srun starts one torchrun per node; the torchruns meet in a c10d rendezvous on the first
# node and start one training process per GPU (or, on nodes without GPUs, one per CPU task: the
# job's --ntasks-per-node). Chosen over DeepSpeed's launcher because it needs no ssh/pdsh or
# hostfile between nodes, and torchrun restarts failed workers (--max-restarts). The rendezvous
# address and port come from slurm/job.py, which the trainer under plain srun uses too.
#
# Preemption: the job is requeueable and asks SLURM for USR1 before its time limit. The trap passes
# it to every training process as SIGTERM (the same signal scancel sends); the trainers agree on a
# step, save a checkpoint and exit; the job then requeues itself and resumes from that checkpoint.

set -uo pipefail
SPANGPT_HOME=${SPANGPT_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$SPANGPT_HOME" || exit 1
source slurm/lib.sh || exit 1
find_python "spangpt job ${SLURM_JOB_ID:-}" || exit 1
export DS_ACCELERATOR=${DS_ACCELERATOR:-$(nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)}

on_preempt() {
  PREEMPTED=1
  echo "spangpt: job $SLURM_JOB_ID got the time-limit warning; checkpointing before requeue"
  scancel --signal=TERM "${SLURM_JOB_ID}.${STEP_ID:-0}"
}

# run_phase DEFAULT_CONFIG [configs...] [--set key=value ...]
run_phase() {
  local default_config=$1; shift
  split_phase_args "$@"
  (( ${#CONFIGS[@]} )) || CONFIGS=("$default_config")
  set_args "${OVERRIDES[@]}"
  RUN_DIR=$("$PY" -m slurm.job run-dir --config "${CONFIGS[@]}" "${SET_ARGS[@]}") || exit 2
  # torchrun's rendezvous and store waits bounded by the trainers' collective timeout (distributed.timeout_minutes;
  # torch's own defaults, 600/60/30 s, where it is longer): behind a partition an agent would outwait its trainer
  local timeout; timeout=$("$PY" -m slurm.job timeout --config "${CONFIGS[@]}" "${SET_ARGS[@]}") || exit 2
  mkdir -p "$RUN_DIR/slurm"
  local run_dir_abs; run_dir_abs=$(cd "$RUN_DIR" && pwd -P)
  if [[ $(readlink -f "/proc/$$/fd/1" 2>/dev/null) != "$run_dir_abs"/* ]]; then  # per-job log in the run dir
    exec > >(tee -a "$RUN_DIR/slurm/${SLURM_JOB_NAME:-job}-${SLURM_JOB_ID}.log") 2>&1
  fi

  local nodes=${SLURM_JOB_NUM_NODES:-1} procs gpus=${SLURM_GPUS_ON_NODE:-0} endpoint
  if (( gpus > 0 )); then procs=$gpus
  else procs=${SLURM_NTASKS_PER_NODE:-1}; procs=${procs%%(*}
  fi
  # Threads per process from the job's CPUs, not the machine's: nodes can be shared (and on the
  # emulated cluster both "nodes" are one machine), where oversubscribing cores costs 6x here.
  if [[ -n ${SLURM_CPUS_PER_TASK:-} && -z ${OMP_NUM_THREADS:-} ]]; then
    export OMP_NUM_THREADS=$(( SLURM_CPUS_PER_TASK / procs > 0 ? SLURM_CPUS_PER_TASK / procs : 1 ))
  fi
  endpoint=$("$PY" -m slurm.job rendezvous) || exit 2
  echo "spangpt: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) $nodes node(s) x $procs process(es) on" \
       "${DS_ACCELERATOR}; run_dir $RUN_DIR; rendezvous $endpoint"

  PREEMPTED=0
  trap on_preempt USR1
  trap 'echo "spangpt: job $SLURM_JOB_ID cancelled; the trainers save a checkpoint"' TERM  # keep relaying their output
  # slurm.node: each node's output also in RUN_DIR/slurm/<job>-<node>.log (a node cut off from this host
  # cannot send it here), and a torchrun stuck behind a lost link stopped once its trainers failed
  srun --ntasks="$nodes" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    "$PY" -m slurm.node --log "$RUN_DIR/slurm/${SLURM_JOB_NAME:-job}-${SLURM_JOB_ID}-%n.log" -- \
    "$PY" -m torch.distributed.run --nnodes="$nodes" --nproc_per_node="$procs" \
      --rdzv_backend=c10d --rdzv_endpoint="$endpoint" --rdzv_id="$SLURM_JOB_ID" \
      --rdzv_conf="join_timeout=$timeout,read_timeout=$(( timeout < 60 ? timeout : 60 )),close_timeout=$(( timeout < 30 ? timeout : 30 ))" \
      launcher/train.py --config "${CONFIGS[@]}" "${SET_ARGS[@]}" &
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
