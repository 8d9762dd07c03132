"""Start and stop the storefront from Python on a free 127.0.0.1 port.

`StorefrontServer(catalog_dir, log_dir, mode="thread")` serves in a background thread of this
process (tests); `mode="process"` runs `python -m simpersona_jax.storefront.serve` in a child
process (simulation, benchmarks: the server then has its own interpreter and GIL). The server
flushes its event log in the background every `flush_interval_s`, on `flush()` and on `stop()`,
after which every event is on disk; both raise EventLogWriteError when events could not be
written. `kill()` SIGKILLs a process-mode server (fault injection).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import uvicorn

from simpersona_jax.storefront.app import Storefront
from simpersona_jax.storefront.catalog import read_catalogs
from simpersona_jax.storefront.eventlog import EventLog, EventLogWriteError

HOST = "127.0.0.1"


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def uvicorn_config(app, **kw) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=2048,
        timeout_keep_alive=30,
        **kw,
    )


class StorefrontServer:
    def __init__(
        self, catalog_dir: str, log_dir: str, mode: str = "thread", flush_interval_s: float = 1.0
    ):
        if mode not in ("thread", "process"):
            raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
        self.catalog_dir, self.log_dir, self.mode = catalog_dir, log_dir, mode
        self.flush_interval_s = flush_interval_s
        self.port: int | None = None
        self.storefront: Storefront | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def store_url(self, store_id: str) -> str:
        return f"{self.origin}/s/{store_id}/"

    def start(self, timeout_s: float = 30.0) -> "StorefrontServer":
        if self.mode == "thread":
            self.storefront = Storefront(
                read_catalogs(self.catalog_dir), EventLog(self.log_dir), self.flush_interval_s
            )
            sock = free_socket()
            self.port = sock.getsockname()[1]
            self._server = uvicorn.Server(uvicorn_config(self.storefront.app))
            self._thread = threading.Thread(
                target=self._server.run, kwargs={"sockets": [sock]}, name="storefront", daemon=True
            )
            self._thread.start()
        else:
            sock = free_socket()
            self.port = sock.getsockname()[1]
            sock.close()
            cmd = [
                sys.executable,
                "-m",
                "simpersona_jax.storefront.serve",
                f"--catalog_dir={self.catalog_dir}",
                f"--events_dir={self.log_dir}",
                f"--port={self.port}",
                f"--flush_interval_s={self.flush_interval_s}",
            ]
            self._proc = subprocess.Popen(cmd)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"storefront process exited with {self._proc.returncode}")
            try:
                with urllib.request.urlopen(self.origin + "/_health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"storefront did not answer on {self.origin} within {timeout_s}s")

    def flush(self) -> None:
        """Puts every event logged so far on disk (EventLogWriteError if some could not be)."""
        if self.storefront is not None:
            self.storefront.log.flush()
        elif self._proc is not None:
            req = urllib.request.Request(self.origin + "/_admin/flush", method="POST")
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
            except urllib.error.HTTPError as e:
                raise EventLogWriteError(json.loads(e.read())["error"]) from None

    def kill(self) -> None:
        """SIGKILLs a process-mode server: what it had not flushed is lost (fault injection)."""
        if self._proc is None:
            raise RuntimeError("kill() needs a running process-mode server")
        self._proc.kill()
        self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None
            self.storefront.log.close()  # the lifespan closed it unless uvicorn did not stop
        if self._proc is not None:
            error = None
            try:
                self.flush()
            except EventLogWriteError as e:
                error = e
            except OSError:
                pass  # already gone; its shutdown hook flushed what it had
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
            if error is not None:
                raise error

    def __enter__(self) -> "StorefrontServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
