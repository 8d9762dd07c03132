"""Serve the storefront in this process until SIGTERM/SIGINT; flushes the event log on exit.

  python -m simpersona_jax.storefront.serve --catalog_dir=DIR --events_dir=DIR --port=8000

Normally started by `StorefrontServer(mode="process")`.
"""

from __future__ import annotations

from absl import app, flags

_CATALOG_DIR = flags.DEFINE_string(
    "catalog_dir", None, "store_id=<s>.parquet catalog files", required=True
)
_EVENTS_DIR = flags.DEFINE_string("events_dir", None, "event log directory", required=True)
_PORT = flags.DEFINE_integer("port", 8000, "port on 127.0.0.1")
_FLUSH = flags.DEFINE_float("flush_interval_s", 1.0, "flush the event log at least this often")


def main(argv):
    del argv
    import uvicorn

    from simpersona_jax.storefront.app import Storefront
    from simpersona_jax.storefront.catalog import read_catalogs
    from simpersona_jax.storefront.eventlog import EventLog
    from simpersona_jax.storefront.server import HOST, uvicorn_config

    storefront = Storefront(
        read_catalogs(_CATALOG_DIR.value), EventLog(_EVENTS_DIR.value), _FLUSH.value
    )
    try:
        uvicorn.Server(uvicorn_config(storefront.app, host=HOST, port=_PORT.value)).run()
    finally:
        storefront.log.close()  # the lifespan closed it unless the server failed to start


if __name__ == "__main__":
    app.run(main)
