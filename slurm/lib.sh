# Sourced by phase.sh, pipeline.sh and sweep.sh, from the repository root: what the three share.
# SLURM facts (head node, rendezvous port, run directories) live in Python: python -m slurm.job.

# find_python NAME: PY is $SPANGPT_PYTHON, or the checkout's .venv; NAME labels the error when absent.
find_python() {
  PY=${SPANGPT_PYTHON:-$PWD/.venv/bin/python}
  [[ -x $PY ]] || { echo "$1: $PY not found; run make setup first (or set SPANGPT_PYTHON)" >&2; return 1; }
}

# split_phase_args ARGS...: "config.yaml ... [--set key=value ...]" -> CONFIGS=(config.yaml ...),
# OVERRIDES=(key=value ...). Everything after the first --set is an override; --set may repeat.
split_phase_args() {
  CONFIGS=(); OVERRIDES=()
  local arg in_set=0
  for arg in "$@"; do
    if [[ $arg == --set ]]; then in_set=1
    elif (( in_set )); then OVERRIDES+=("$arg")
    else CONFIGS+=("$arg")
    fi
  done
}

# set_args [key=value ...]: SET_ARGS=(--set key=value ...), or none when there are no overrides
# (a bare --set would be an error for train.py and slurm.job).
set_args() {
  SET_ARGS=()
  if (( $# )); then SET_ARGS=(--set "$@"); fi
}
