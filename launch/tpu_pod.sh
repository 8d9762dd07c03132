#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: the same module runs on every worker (one process per
# host); jax.distributed.initialize() auto-detects the pod (config.distributed="auto").
#
#   launch/tpu_pod.sh <tpu-name> <zone> experiments/vqvae.py gs://bucket/runs/vqvae \
#       [--config.global_batch_size=65536 --config.mesh.data=-1 ...]
#
# Env: PROJECT (gcloud project, optional), REPO_DIR (checkout on the workers, default
# ~/simpersona_jax), SETUP=1 to (re)install the package with jax[tpu] on every worker first.
# Pre-flight: before anything starts on the pod, the config's train step is compiled here for
# the pod's topology (python -m simpersona_jax.compile_check, needs pip install -e '.[tpu]') and
# a config whose per-chip memory exceeds 90% of HBM is refused. TOPOLOGY=v5p:4x4x4 names it
# (default: asked of gcloud), MODEL=qwen3-14b sizes an LM without its checkpoint here;
# PREFLIGHT=0 skips it.
# The workdir should be on shared storage (gs:// or a mounted filesystem): orbax writes one
# checkpoint from all hosts and each host writes its own Grain iterator state next to it.
set -euo pipefail
if [[ $# -lt 4 ]]; then
  sed -n '2,18p' "$0"; exit 2
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

if [[ "${PREFLIGHT:-1}" == "1" ]]; then
  if [[ -z "${TOPOLOGY:-}" ]]; then
    read -r KIND SHAPE < <(gcloud compute tpus tpu-vm describe "$TPU" --zone="$ZONE" "${PROJECT_FLAG[@]}" \
      --format='value(acceleratorConfig.type,acceleratorConfig.topology)')
    case "$KIND" in
      V4) GEN=v4 ;; V5LITE_POD|V5E) GEN=v5e ;; V5P) GEN=v5p ;; V6E) GEN=v6e ;;
      *) echo "pre-flight: unknown accelerator type '$KIND' of $TPU; set TOPOLOGY=<gen>:<shape>"; exit 2 ;;
    esac
    TOPOLOGY="$GEN:$SHAPE"
  fi
  if ! python -m simpersona_jax.compile_check --config="$CONFIG" --topology="$TOPOLOGY" ${MODEL:+--model="$MODEL"} "$@"; then
    echo "pre-flight: $CONFIG does not fit $TOPOLOGY (see above); not launching (PREFLIGHT=0 skips)"
    exit 1
  fi
fi

if [[ "${SETUP:-0}" == "1" ]]; then
  ssh_all "cd $REPO_DIR && pip install -q -e . 'jax[tpu]' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html"
fi
ssh_all "cd $REPO_DIR && python -m simpersona_jax.train --config=$CONFIG --workdir=$WORKDIR$EXTRA 2>&1 | tee -a /tmp/simpersona_train.log"
