"""simpersona_jax: discrete buyer types from clickstreams, persona-conditioned shopping agents.

A JAX/Flax reimplementation of SimPersona (arXiv 2605.14205). See README.md and DESIGN notes.
"""

__version__ = "0.1.0"
