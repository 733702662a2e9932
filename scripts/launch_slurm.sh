#!/usr/bin/env bash
# Usage: sbatch [--nodes N] [--gres gpu:G --ntasks-per-node G] scripts/launch_slurm.sh \
#            CONFIG [extra labelgen fit args...]
#   e.g. sbatch --nodes 4 scripts/launch_slurm.sh configs/pretrain-roberta-gpu.yaml
# Submit from the project root: the job starts there, and config and data paths are relative
# to it. The environment with labelgen installed must be active (sbatch passes it on).
#
# One Slurm task per GPU, started by srun; Lightning's SLURMEnvironment reads each task's rank
# from SLURM_PROCID / SLURM_LOCALID and starts no processes itself. It refuses to run unless
# devices == --ntasks-per-node and num_nodes == --nodes, so both are passed from Slurm's own
# variables. --gres gives every task on a node all its GPUs and Lightning picks cuda:LOCALID;
# binding one GPU per task (--gpus-per-task, --gpu-bind) would break that device choice.
#SBATCH --job-name=labelgen
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=10
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%j.out
# SIGUSR1 90 s before the time limit: Lightning saves a checkpoint and requeues the job, which
# resumes from it.
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
set -euo pipefail

if [[ $# -lt 1 ]]; then
    sed -n '2,4p' "$0" >&2
    exit 2
fi
CONFIG=$1
shift

# --cpus-per-task covers the data module's num_workers (8 in the GPU configs) plus the
# training process itself; keep them in step.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

srun labelgen fit --config "${CONFIG}" \
    --trainer.num_nodes "${SLURM_NNODES}" \
    --trainer.devices "${SLURM_NTASKS_PER_NODE}" \
    "$@"
