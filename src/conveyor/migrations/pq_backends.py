"""The two libpq backends of :mod:`conveyor.migrations.pq` (same semantics, both are libpq):
``ctypes`` (libpq loaded with ctypes) and ``psycopg`` (psycopg's low-level ``psycopg.pq``).

Stdlib only at import time.
"""

from __future__ import annotations

import os
import sys


class ConnectError(Exception):
    """libpq could not connect (or lost the connection)."""


def dec(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


class CtypesBackend:
    name = "ctypes"

    def __init__(self, lib) -> None:
        import ctypes as C

        self.C = C
        self.lib = lib
        P, S, I = C.c_void_p, C.c_char_p, C.c_int
        sig = {
            "PQconnectdb": ([S], P),
            "PQstatus": ([P], I),
            "PQerrorMessage": ([P], S),
            "PQfinish": ([P], None),
            "PQsendQuery": ([P, S], I),
            "PQsocket": ([P], I),
            "PQconsumeInput": ([P], I),
            "PQisBusy": ([P], I),
            "PQgetResult": ([P], P),
            "PQresultStatus": ([P], I),
            "PQresultErrorField": ([P, I], S),
            "PQresultErrorMessage": ([P], S),
            "PQcmdStatus": ([P], S),
            "PQntuples": ([P], I),
            "PQnfields": ([P], I),
            "PQgetvalue": ([P, I, I], S),
            "PQgetisnull": ([P, I, I], I),
            "PQclear": ([P], None),
            "PQtransactionStatus": ([P], I),
            "PQgetCancel": ([P], P),
            "PQcancel": ([P, S, I], I),
            "PQfreeCancel": ([P], None),
            "PQputCopyEnd": ([P, S], I),
            "PQgetCopyData": ([P, C.POINTER(C.c_char_p), I], I),
            "PQfreemem": ([P], None),
            "PQbackendPID": ([P], I),
            "PQserverVersion": ([P], I),
        }
        for fname, (args, res) in sig.items():
            f = getattr(lib, fname)
            f.argtypes = args
            f.restype = res
        # The calls made for every result are the libpq functions themselves (no wrapper):
        # a batch of 500 migrations returns ~2500 results.
        self.consume_input = lib.PQconsumeInput
        self.is_busy = lib.PQisBusy
        self.get_result = lib.PQgetResult  # None for NULL (restype c_void_p)
        self.result_status = lib.PQresultStatus
        self.clear = lib.PQclear
        self._ntuples, self._nfields, self._getvalue = lib.PQntuples, lib.PQnfields, lib.PQgetvalue
        self._notice_type = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p)
        lib.PQsetNoticeProcessor.argtypes = [P, self._notice_type, P]
        lib.PQsetNoticeProcessor.restype = P

    # connection
    def connect(self, conninfo: bytes):
        h = self.lib.PQconnectdb(conninfo)
        if not h:
            raise ConnectError("out of memory allocating the libpq connection")
        if self.lib.PQstatus(h) != 0:
            msg = dec(self.lib.PQerrorMessage(h)) or "unknown error"
            self.lib.PQfinish(h)
            raise ConnectError(msg.strip())
        return h

    def set_notice_sink(self, h, sink: list) -> object:
        def proc(_arg, msg):
            sink.append((dec(msg) or "").rstrip())

        cb = self._notice_type(proc)
        self.lib.PQsetNoticeProcessor(h, cb, None)
        return cb  # keep a reference for the connection's lifetime

    def error_message(self, h) -> str:
        return (dec(self.lib.PQerrorMessage(h)) or "").strip()

    def finish(self, h) -> None:
        self.lib.PQfinish(h)

    def send_query(self, h, q: bytes) -> bool:
        return bool(self.lib.PQsendQuery(h, q))

    def socket(self, h) -> int:
        return self.lib.PQsocket(h)

    def transaction_status(self, h) -> int:
        return self.lib.PQtransactionStatus(h)

    def backend_pid(self, h) -> int:
        return self.lib.PQbackendPID(h)

    def server_version(self, h) -> int:
        return self.lib.PQserverVersion(h)

    def cancel(self, h) -> None:
        c = self.lib.PQgetCancel(h)
        if c:
            buf = self.C.create_string_buffer(256)
            self.lib.PQcancel(c, buf, 256)
            self.lib.PQfreeCancel(c)

    def put_copy_end(self, h, msg: bytes) -> None:
        self.lib.PQputCopyEnd(h, msg)

    def drain_copy_out(self, h) -> None:
        buf = self.C.c_char_p()
        while True:
            n = self.lib.PQgetCopyData(h, self.C.byref(buf), 0)
            if n > 0:
                self.lib.PQfreemem(self.C.cast(buf, self.C.c_void_p))
                continue
            break

    # results
    def error_field(self, r, code: int) -> str | None:
        return dec(self.lib.PQresultErrorField(r, code))

    def result_error_message(self, r) -> str:
        return (dec(self.lib.PQresultErrorMessage(r)) or "").strip()

    def command(self, r) -> str:
        return dec(self.lib.PQcmdStatus(r)) or ""

    def rows(self, r) -> list[tuple]:
        lib = self.lib
        nt, nf = lib.PQntuples(r), lib.PQnfields(r)
        out = []
        for i in range(nt):
            out.append(tuple(
                None if lib.PQgetisnull(r, i, j) else lib.PQgetvalue(r, i, j).decode("utf-8", "replace")
                for j in range(nf)
            ))
        return out

    def is_marker(self, r, prefix: bytes) -> bool:
        # PQgetvalue gives b"" for NULL, which never starts with the (non-empty) prefix
        return (self._ntuples(r) == 1 and self._nfields(r) >= 1
                and self._getvalue(r, 0, 0).startswith(prefix))


class PsycopgBackend:
    name = "psycopg"

    def __init__(self) -> None:
        from psycopg import pq

        self.pq = pq

    def connect(self, conninfo: bytes):
        h = self.pq.PGconn.connect(conninfo)
        if h.status != self.pq.ConnStatus.OK:
            msg = dec(h.error_message) or "unknown error"
            h.finish()
            raise ConnectError(msg.strip())
        return h

    def set_notice_sink(self, h, sink: list) -> object:
        def handler(res):
            sink.append((dec(res.error_message) or "").rstrip())

        h.notice_handler = handler
        return handler

    def error_message(self, h) -> str:
        return (dec(h.error_message) or "").strip()

    def finish(self, h) -> None:
        h.finish()

    def send_query(self, h, q: bytes) -> bool:
        try:
            h.send_query(q)
        except Exception:  # noqa: BLE001 - psycopg raises its own errors: the call failed
            return False
        return True

    def socket(self, h) -> int:
        return h.socket

    def consume_input(self, h) -> bool:
        try:
            h.consume_input()
        except Exception:  # noqa: BLE001 - psycopg raises its own errors: the call failed
            return False
        return True

    def is_busy(self, h) -> bool:
        return bool(h.is_busy())

    def get_result(self, h):
        return h.get_result()

    def transaction_status(self, h) -> int:
        return int(h.transaction_status)

    def backend_pid(self, h) -> int:
        return h.backend_pid

    def server_version(self, h) -> int:
        return h.server_version

    def cancel(self, h) -> None:
        try:
            h.get_cancel().cancel()
        except Exception:  # noqa: BLE001, S110 - best effort, as PQcancel
            pass

    def put_copy_end(self, h, msg: bytes) -> None:
        h.put_copy_end(msg)

    def drain_copy_out(self, h) -> None:
        while True:
            n, _ = h.get_copy_data(0)
            if n <= 0:
                break

    def result_status(self, r) -> int:
        return int(r.status)

    def error_field(self, r, code: int) -> str | None:
        return dec(r.error_field(self.pq.DiagnosticField(code)))

    def result_error_message(self, r) -> str:
        return (dec(r.error_message) or "").strip()

    def command(self, r) -> str:
        return dec(r.command_status) or ""

    def rows(self, r) -> list[tuple]:
        return [
            tuple(dec(r.get_value(i, j)) for j in range(r.nfields)) for i in range(r.ntuples)
        ]

    def is_marker(self, r, prefix: bytes) -> bool:
        if r.ntuples != 1 or r.nfields < 1:
            return False
        v = r.get_value(0, 0)
        return v is not None and v.startswith(prefix)

    def clear(self, r) -> None:
        r.clear()


def load_ctypes_libpq():
    import ctypes

    candidates = []
    env = os.environ.get("CONVEYOR_LIBPQ")
    if env:
        candidates.append(env)
    candidates += ["libpq.so.5", "libpq.5.dylib", "libpq.dylib"]
    for cand in candidates:
        try:
            return ctypes.CDLL(cand)
        except OSError:
            continue
    # the libpq bundled in psycopg's binary wheel (psycopg_binary.libs/libpq-*.so*)
    import glob

    for entry in sys.path:
        for path in sorted(glob.glob(os.path.join(entry or ".", "psycopg_binary.libs", "libpq*.so*"))):
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None
