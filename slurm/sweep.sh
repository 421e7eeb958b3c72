#!/usr/bin/env bash
# Submit the paper's grid as SLURM jobs: per variant and seed, pretrain -> finetune (chained with
# --dependency=afterok) and the no-pretraining baseline, each into DIR/<variant>/seed<seed>/<phase>.
#
#   bash slurm/sweep.sh SCALE_DIR --out DIR [--data DATA_DIR] [--variants ...] [--seeds ...]
#                       [--settings pretrained scratch] [--label TEXT] [--set key=value ...]
#   SBATCH_ARGS="--partition=gpu --account=me --nodes=1 --gpus-per-node=4" \
#     bash slurm/sweep.sh configs --data datasets/birthplaces --out runs/sweep/spec --set train.precision=bf16
#
# The arguments are python -m experiments.sweep's (see its --help), which validates every config and
# writes DIR/sweep.json before anything is submitted; then this script submits one job per run
# through slurm/pretrain.sh and slurm/finetune.sh, whose #SBATCH defaults (GPU nodes) SBATCH_ARGS
# overrides, e.g. on CPU nodes: SBATCH_ARGS="--nodes=1 --ntasks-per-node=2 --gpus-per-node=0
# --cpus-per-task=1". Runs already completed with the same config are not submitted again. Each
# job's log is in its run directory's slurm/; when all have finished: python -m experiments.report DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source slurm/lib.sh
find_python sweep
read -r -a extra <<< "${SBATCH_ARGS:-}"

for arg in "$@"; do [[ $arg == -h || $arg == --help ]] && exec "$PY" -m experiments.sweep --help; done
recorded="bash slurm/sweep.sh$(printf ' %q' "$@")"
plan=$("$PY" -m experiments.sweep "$@" --plan --command "$recorded") || exit $?

declare -A pretrain_job=()
submitted=0
while IFS=$'\t' read -r -a fields; do
  state=${fields[0]} cell=${fields[1]} phase=${fields[2]} run_dir=${fields[3]}
  phase_args=("${fields[@]:4}")
  if [[ $state == done ]]; then
    echo "$cell $phase: completed earlier ($run_dir)"
    continue
  fi
  dep_args=()
  if [[ $phase == finetune && -n ${pretrain_job[$cell]:-} ]]; then
    dep_args=(--dependency="afterok:${pretrain_job[$cell]}" --kill-on-invalid-dep=yes)
  fi
  script=slurm/finetune.sh
  [[ $phase == pretrain ]] && script=slurm/pretrain.sh
  mkdir -p "$run_dir/slurm"
  job=$(sbatch --parsable "${extra[@]}" "${dep_args[@]}" --job-name="spangpt-$cell-$phase" \
        --output="$run_dir/slurm/%x-%j.out" "$script" "${phase_args[@]}")
  job=${job%%;*}
  [[ $phase == pretrain ]] && pretrain_job[$cell]=$job
  echo "$cell $phase: job $job -> $run_dir${dep_args:+ (after ${pretrain_job[$cell]})}"
  submitted=$((submitted + 1))
done <<< "$plan"
echo "submitted $submitted job(s); when they have finished: python -m experiments.report <the sweep's --out>"
