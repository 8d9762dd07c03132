"""The whole loop as one command (`python -m simpersona_jax.pipeline`): stages, manifests, runner.

data -> vqvae -> assign -> traces -> agent_base -> agent_stage1 -> agent_stage2 -> simulate ->
goals -> report, each writing `<workdir>/<stage>/` with a manifest.json that later stages read.
"""

from simpersona_jax.loop.checks import PipelineError
from simpersona_jax.loop.runner import run
from simpersona_jax.loop.stages import NAMES, STAGES

__all__ = ["NAMES", "PipelineError", "STAGES", "run"]
