#!/bin/bash
# Train a genlab recipe on several SLURM nodes with sharded data parallelism (train.parallel: fsdp).
# One torchrun per node (srun), which starts one process per GPU; rendezvous at the first node (c10d).
#
#   sbatch --nodes=4 docs/slurm-train.sh recipes/my-dit.yaml --out runs/my-dit [--train.key=value ...]
#   sbatch --nodes=2 docs/slurm-train.sh --resume runs/my-dit      # resume on any number of nodes
#
# The run folder (--out) and the data must be on a file system every node sees: rank 0 writes the checkpoint
# (consolidated, single-file safetensors), every rank reads the data and, on resume, the checkpoint.
# train.batch_size is the global batch: it must be divisible by (nodes x GPUs per node x train.grad_accum).
#SBATCH --job-name=genlab-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

if [ "$#" -lt 1 ]; then
  echo "usage: sbatch [--nodes=N] docs/slurm-train.sh RECIPE.yaml [--out RUN] [--train.key=value ...]" >&2
  echo "       sbatch [--nodes=N] docs/slurm-train.sh --resume RUN [--train.key=value ...]" >&2
  exit 2
fi

GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT=${PORT:-29500}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

# --train.parallel=fsdp here: a command-line override wins over the recipe (remove it to train with ddp).
srun --kill-on-bad-exit=1 torchrun \
  --nnodes "$SLURM_NNODES" \
  --nproc-per-node "$GPUS_PER_NODE" \
  --rdzv-backend c10d \
  --rdzv-endpoint "$HEAD:$PORT" \
  --rdzv-id "$SLURM_JOB_ID" \
  -m genlab train "$@" --train.parallel=fsdp --no-progress
