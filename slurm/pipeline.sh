#!/usr/bin/env bash
# Submit pretrain -> finetune -> evaluate as three SLURM jobs chained with --dependency=afterok.
#
#   bash slurm/pipeline.sh                                   # the CPU demo on the synthetic world (any cluster)
#   bash slurm/pipeline.sh --demo [overlay.yaml ...] [--set key=value ...]     # the same, adjusted
#   bash slurm/pipeline.sh [overlay.yaml ...] [--set key=value ...]            # SPEC's real-data run, GPU defaults
#
# Run from the repository root after `make setup`. Extra sbatch options (partition, account, nodes,
# GPUs) go in SBATCH_ARGS, e.g. SBATCH_ARGS="--partition=gpu --account=me --nodes=4".
# Each phase's run directory is resolved now and handed on: finetune starts from pretrain's
# export, evaluate from finetune's. A failed phase cancels the phases after it
# (--kill-on-invalid-dep), and squeue/scontrol show the reason (DependencyNeverSatisfied).
set -euo pipefail
cd "$(dirname "$0")/.."
source slurm/lib.sh
find_python pipeline

read -r -a extra <<< "${SBATCH_ARGS:-}"
demo=0
if (( $# == 0 )) || [[ $1 == --demo ]]; then demo=1; (( $# )) && shift; fi
split_phase_args "$@"
overlays=("${CONFIGS[@]}") overrides=("${OVERRIDES[@]}")
if (( demo )); then
  dir=configs/demo
  # CPU nodes: one training process per task, no GPUs, a demo-sized time limit.
  sbatch_args=(--nodes=2 --ntasks-per-node=1 --gpus-per-node=0 --cpus-per-task=1 --time=00:30:00 "${extra[@]}")
  [[ -f worlds/demo/wiki.txt ]] ||
    "$PY" -m data.synthetic worlds/demo --seed 0 --train 100 --dev 100 --test 50 --places 20 >/dev/null
else
  dir=configs
  sbatch_args=("${extra[@]}")
fi

resolve() {  # resolve PHASE [key=value ...]: the phase's run directory, with the overlays and overrides
  set_args "${overrides[@]}" "${@:2}"
  "$PY" -m slurm.job run-dir --config "$dir/$1.yaml" "${overlays[@]}" "${SET_ARGS[@]}"
}
submit() {  # submit PHASE DEPENDENCY RUN_DIR [key=value ...]: the job id
  local phase=$1 dependency=$2 run_dir=$3; shift 3
  local dep_args=()
  [[ -n $dependency ]] && dep_args=(--dependency="afterok:$dependency" --kill-on-invalid-dep=yes)
  mkdir -p "$run_dir/slurm"
  set_args "${overrides[@]}" "$@"
  sbatch --parsable "${sbatch_args[@]}" "${dep_args[@]}" --output="$run_dir/slurm/%x-%j.out" \
    "slurm/$phase.sh" "$dir/$phase.yaml" "${overlays[@]}" "${SET_ARGS[@]}"
}

pretrain_dir=$(resolve pretrain)
pretrain=$(submit pretrain "" "$pretrain_dir")
finetune_dir=$(resolve finetune "init_from=$pretrain_dir/export")
finetune=$(submit finetune "$pretrain" "$finetune_dir" "init_from=$pretrain_dir/export")
evaluate_dir=$(resolve evaluate "init_from=$finetune_dir/export")
evaluate=$(submit evaluate "$finetune" "$evaluate_dir" "init_from=$finetune_dir/export")

echo "pretrain $pretrain -> $pretrain_dir"
echo "finetune $finetune -> $finetune_dir (after $pretrain)"
echo "evaluate $evaluate -> $evaluate_dir (after $finetune)"
