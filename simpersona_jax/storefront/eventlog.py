"""Append-only canonical event log written by the storefront.

Events are buffered in memory and flushed as Parquet segments in the canonical on-disk layout,
`<log_dir>/store_id=<s>/bucket=0/part-<writer>-<seq>.parquet`. A segment is written to a
temporary name, fsync'd, renamed into place and its folder fsync'd, so a reader (the buyer
pipeline, `read_log`) only ever sees whole segments and a segment on disk survives a crash.

Every event is written exactly once: events leave the buffer only after their segment is in
place, a segment is never rewritten, and flushes are serialised. A failed write (per store)
keeps that store's events in the buffer for the next flush; `written` and `pending()` always
count what is on disk and what is not. After `FAILURES_TO_REPORT` failed flushes in a row,
`error` holds one line saying what fails (the server's /_health reports it) and it is logged
once; the next successful flush clears it.

`start(interval_s)` runs a background flusher thread so a quiet server writes its events too: an
event is on disk within `interval_s` of being appended while a flush takes less than half the
interval (the flusher wakes every half interval). `close()` stops it and flushes the rest.
Several processes can share one log directory (the writer id holds the pid and a random tag).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import threading
import uuid

import polars as pl

from simpersona_jax.data.schema import COLUMNS, SCHEMA

FAILURES_TO_REPORT = 3
_log = logging.getLogger(__name__)


class EventLogWriteError(OSError):
    """A flush could not write some events; they stay buffered and are retried."""


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: str) -> None:
    """Creates `path` (and missing parents) and fsyncs each parent that gained an entry."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        os.makedirs(d, exist_ok=True)
        _fsync_dir(os.path.dirname(d))


def write_segment(frame: pl.DataFrame, path: str) -> None:
    """Writes `frame` to `path` atomically and durably (temporary file, fsync, rename)."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    buf = io.BytesIO()
    frame.write_parquet(buf)
    try:
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class EventLog:
    def __init__(self, log_dir: str, max_buffer: int = 2000):
        self.log_dir = log_dir
        self.max_buffer = max_buffer
        self.writer_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._rows: list[tuple] = []
        self._seq = 0
        self._lock = threading.Lock()  # guards _rows (held briefly; appends never wait on I/O)
        self._flush_lock = threading.Lock()  # one flush at a time
        self.written = 0
        self.failures = 0  # failed flushes in a row
        self.error = ""  # set after FAILURES_TO_REPORT failures in a row
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _makedirs_durable(log_dir)

    def append(
        self,
        store_id: str,
        buyer_id: str,
        session_id: str,
        event_type: str,
        *,
        product_id=None,
        category=None,
        brand=None,
        title=None,
        price=None,
        quantity=None,
        query=None,
        event_time: dt.datetime | None = None,
    ) -> None:
        if event_type not in SCHEMA["event_type"].categories:
            raise ValueError(f"unknown event_type {event_type!r}")
        t = event_time or dt.datetime.now(dt.timezone.utc)
        row = (
            store_id,
            buyer_id,
            session_id,
            t,
            event_type,
            product_id,
            category,
            brand,
            title,
            price,
            quantity,
            query,
        )
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.max_buffer
        if full:
            if self._thread is not None:
                self._wake.set()
            else:
                try:
                    self.flush()
                except EventLogWriteError:
                    pass  # the event is buffered; the failure is counted in failures / error

    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Writes buffered events, one segment per store; returns the number written.

        Raises EventLogWriteError when some store's segment could not be written: its events
        stay buffered (the others are written and leave the buffer)."""
        with self._flush_lock:
            with self._lock:
                rows = list(self._rows)
            if not rows:
                return 0
            seq = self._seq
            self._seq += 1
            frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
            done, errors = set(), []
            for (store_id,), part in frame.partition_by("store_id", as_dict=True).items():
                folder = os.path.join(self.log_dir, f"store_id={store_id}", "bucket=0")
                try:
                    _makedirs_durable(folder)
                    name = f"part-{self.writer_id}-{seq:06d}.parquet"
                    write_segment(part, os.path.join(folder, name))
                except OSError as e:
                    errors.append(f"{folder}: {type(e).__name__}: {e.strerror or e}")
                    continue
                done.add(store_id)  # in place: never written again, even if the dir sync fails
                try:
                    _fsync_dir(folder)
                except OSError as e:
                    _log.warning("event log: fsync of %s failed: %s", folder, e)
            n = sum(r[0] in done for r in rows)
            with self._lock:  # appends only add at the end: the first len(rows) are ours
                kept = [r for r in rows if r[0] not in done]
                self._rows[: len(rows)] = kept
                self.written += n
            if not errors:
                self.failures, self.error = 0, ""
                return n
            self.failures += 1
            message = (
                f"event log: {len(kept)} events not written (kept, retried on the next "
                f"flush): {'; '.join(errors)}"
            )
            if self.failures >= FAILURES_TO_REPORT:
                if not self.error:
                    _log.error("%s (%d failed flushes in a row)", message, self.failures)
                self.error = message
            raise EventLogWriteError(message)

    # ---- background flusher -------------------------------------------------------------------
    def start(self, interval_s: float) -> "EventLog":
        """Flushes every `interval_s / 2` seconds in a background thread until close()."""
        if interval_s <= 0:
            raise ValueError(f"flush interval must be > 0 seconds, got {interval_s}")
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(interval_s / 2,), name="eventlog-flusher", daemon=True
            )
            self._thread.start()
        return self

    def _run(self, tick_s: float) -> None:
        while not self._stop.is_set():
            self._wake.wait(tick_s)
            self._wake.clear()
            try:
                self.flush()
            except EventLogWriteError:
                pass  # counted in self.failures / self.error; retried on the next tick
            except Exception:  # noqa: BLE001 - the flusher must outlive a bad batch
                _log.exception("event log: flush failed")

    def close(self) -> int:
        """Stops the flusher thread and flushes what is left; returns the number written."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
        return self.flush()


def read_log(log_dir: str) -> pl.DataFrame:
    """All flushed events as a canonical frame, in event-time order (ties: write order)."""
    pattern = os.path.join(log_dir, "**", "*.parquet")
    if not any(True for _ in _iter_parquet(log_dir)):
        return pl.DataFrame(schema=SCHEMA)
    frame = pl.scan_parquet(pattern, hive_partitioning=True).select(COLUMNS).collect()
    return frame.sort("event_time", maintain_order=True)


def _iter_parquet(log_dir: str):
    for root, _, files in os.walk(log_dir):
        for f in files:
            if f.endswith(".parquet"):
                yield os.path.join(root, f)
