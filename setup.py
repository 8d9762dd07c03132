"""simpersona_jax: behaviour-aware buyer types and persona-conditioned shopping agents in JAX."""

from setuptools import find_packages, setup

setup(
    name="simpersona_jax",
    version="0.1.0",
    description="JAX/Flax reimplementation of SimPersona: VQ-VAE buyer types, persona-token LM "
    "agents, and browser-simulated buyer populations.",
    python_requires=">=3.10",
    packages=find_packages(include=["simpersona_jax", "simpersona_jax.*"]),
    package_data={"simpersona_jax": ["storefront/templates/*.html", "storefront/static/*"]},
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10.0",
        "optax>=0.2.3",
        "orbax-checkpoint>=0.9.0",
        "grain>=0.2.2",
        "transformers>=4.51.0",
        "tokenizers>=0.21.0",
        "safetensors>=0.4.3",
        "tensorstore>=0.1.65",
        "playwright>=1.45.0",
        "absl-py>=2.1.0",
        "ml_collections>=0.1.1",
        "numpy>=1.26",
        "polars>=1.10.0",
        "pyarrow>=16.0",
        "zstandard>=0.22",
        "scikit-learn>=1.4",
        "scipy>=1.10",
        "tensorboardX>=2.6",
        "starlette>=0.37",
        "uvicorn>=0.30",
        "jinja2>=3.1",
        "python-multipart>=0.0.9",
        "itsdangerous>=2.1",
        "tqdm>=4.66",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "psutil>=5.9",
    ],
    extras_require={
        # Deviceless TPU compiles on any host (python -m simpersona_jax.compile_check); on a
        # machine without a TPU nothing else changes (simpersona_jax/__init__.py).
        "tpu": ["libtpu==0.0.52"],
        "test": [
            "pytest>=8.0",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",  # one worker: a crashed interpreter loses one test (pytest.ini)
            "pytest-rerunfailures>=14.0",
            "ruff==0.17.6",  # the one formatter (ruff.toml); pinned so its output is stable
            "httpx>=0.27",
            "pandas>=2.1",
            # Reference implementations for parity tests and benchmarks (CPU build on local disk).
            "torch==2.13.0",
            "vector-quantize-pytorch>=1.14",
        ],
    },
)
