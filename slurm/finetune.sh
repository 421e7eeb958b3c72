#!/usr/bin/env bash
# sbatch slurm/finetune.sh [config.yaml ...] [--set key=value ...]      (run from the repository root)
# Defaults are for a GPU cluster; override any of them on the sbatch command line, e.g.
#   sbatch --nodes=1 --gpus-per-node=4 --partition=gpu --account=me slurm/finetune.sh configs/finetune.yaml
#SBATCH --job-name=spangpt-finetune
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00
#SBATCH --output=slurm-%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@180
source "${SPANGPT_HOME:-$SLURM_SUBMIT_DIR}/slurm/phase.sh"
run_phase configs/finetune.yaml "$@"
