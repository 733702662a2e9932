#!/usr/bin/env bash
# Usage: scripts/launch_torchrun.sh CONFIG [extra labelgen fit args...]
#   e.g. scripts/launch_torchrun.sh configs/pretrain-roberta-gpu.yaml --trainer.max_epochs 3
# One node, every visible GPU, one process per GPU started by torchrun. Run from the project
# root (config and data paths are relative to it); NPROC_PER_NODE=N overrides the GPU count.
#
# `labelgen fit --config CONFIG` alone also trains on every GPU: with `devices: -1` Lightning's
# DDP starts the other processes itself. torchrun is for when the processes should be owned by
# PyTorch's elastic agent (restarts with --max-restarts, the same launcher as other jobs).
# Under torchrun Lightning detects the TorchElastic environment (LOCAL_RANK, WORLD_SIZE, ...),
# starts no processes of its own and requires devices * num_nodes == WORLD_SIZE, so devices is
# passed explicitly as the process count instead of the config's -1.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    sed -n '2,3p' "$0" >&2
    exit 2
fi
config=$1
shift

# Counts the GPUs this process may use: CUDA_VISIBLE_DEVICES is honoured, unlike `nvidia-smi -L`.
nproc=${NPROC_PER_NODE:-$(python -c 'import torch; print(torch.cuda.device_count())')}
if [[ $nproc -lt 1 ]]; then
    echo "launch_torchrun.sh: no CUDA device visible" >&2
    exit 1
fi

exec torchrun --standalone --nnodes=1 --nproc_per_node="$nproc" -m labelgen.cli \
    fit --config "$config" --trainer.num_nodes 1 --trainer.devices "$nproc" "$@"
