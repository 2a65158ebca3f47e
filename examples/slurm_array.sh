#!/bin/bash
# One study searched by a Slurm job array: every task runs the same `automl search` against one
# PostgreSQL database; the first task to start creates the study, the others join it, and
# --trials is the study's total over all tasks. Submit with:
#
#     sbatch --array=0-3 examples/slurm_array.sh
#
# Every task needs: this repository (or `pip install automl-keras[postgres,gpu]`) in the same
# environment, the same space file and data, network access to the database, and the artifact
# folder below on a filesystem all nodes share (checkpoints, histories, resume points).
#SBATCH --job-name=automl-cnn
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=16
#SBATCH --time=12:00:00
#SBATCH --output=automl-%A_%a.log
set -euo pipefail

# Keep the password out of the script: e.g. `export AUTOML_STORAGE=...` in ~/.automl_env
# (chmod 600), or Slurm's --export from your shell.
if [ -f "$HOME/.automl_env" ]; then source "$HOME/.automl_env"; fi
: "${AUTOML_STORAGE:?set AUTOML_STORAGE=postgresql://user:password@db-host/automl}"
export AUTOML_ARTIFACTS="${AUTOML_ARTIFACTS:-/shared/automl/runs}"
# Task ids tell the hosts apart in `automl show` and the report even where node names repeat.
export AUTOML_HOST="${SLURMD_NODENAME:-$(hostname)}-task${SLURM_ARRAY_TASK_ID:-0}"

cd "${SLURM_SUBMIT_DIR:-.}"
source .venv/bin/activate

# SIGTERM at the time limit records the running trials and re-queues them (exit 143); a node
# that dies has its trials failed and re-run by the other tasks after 3 heartbeats (30 s).
exec automl search spaces/cnn.py --study cnn --trials 200 --quiet
