#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: the same module runs on every worker (one process per
# host); jax.distributed.initialize() auto-detects the pod (config.distributed="auto").
#
#   launch/tpu_pod.sh <tpu-name> <zone> experiments/vqvae.py gs://bucket/runs/vqvae \
#       [--config.global_batch_size=65536 --config.mesh.data=-1 ...]
#
# Env: PROJECT (gcloud project, optional), REPO_DIR (checkout on the workers, default
# ~/simpersona_jax), SETUP=1 to (re)install the package with jax[tpu] on every worker first.
# The workdir should be on shared storage (gs:// or a mounted filesystem): orbax writes one
# checkpoint from all hosts and each host writes its own Grain iterator state next to it.
set -euo pipefail
if [[ $# -lt 4 ]]; then
  sed -n '2,12p' "$0"; exit 2
fi
TPU=$1; ZONE=$2; CONFIG=$3; WORKDIR=$4; shift 4
REPO_DIR=${REPO_DIR:-'~/simpersona_jax'}
PROJECT_FLAG=()
[[ -n "${PROJECT:-}" ]] && PROJECT_FLAG=(--project="$PROJECT")
EXTRA=$(printf ' %q' "$@")

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" "${PROJECT_FLAG[@]}" --worker=all \
    --command="$1"
}

if [[ "${SETUP:-0}" == "1" ]]; then
  ssh_all "cd $REPO_DIR && pip install -q -e . 'jax[tpu]' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
fi
ssh_all "cd $REPO_DIR && python -m simpersona_jax.train --config=$CONFIG --workdir=$WORKDIR$EXTRA 2>&1 | tee -a /tmp/simpersona_train.log"
