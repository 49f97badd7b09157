"""One remote shell for many commands (the framed command session).

A session costs the host a login shell (and its rc files) once instead of once per command.
The remote side is `conveyor/host/session.sh`: it reads frames `"<script bytes> <input
bytes>\\n" + script + input` on stdin, runs each script with `sh -c`, then prints a marker line
with the exit code on stdout and a marker line on stderr. Commands run one at a time.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shlex
import subprocess
import threading
import time
from typing import IO

from conveyor import host
from conveyor.transport.base import OutputSink


class SessionBroken(Exception):
    """The session's shell or its connection went away."""


class Session:
    """`argv` (e.g. an ssh command line up to the host name) runs host/session.sh remotely;
    `lock` is held by whoever runs a command."""

    def __init__(self, argv: list[str]) -> None:
        self.mark = f"::conveyor-{secrets.token_hex(8)}::".encode()
        self.proc = subprocess.Popen(
            [*argv, "--", shlex.join(host.argv("session", self.mark.decode()))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self.lines: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
        for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True).start()
        self.lock = threading.Lock()
        self.dead = False

    def _pump(self, name: str, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            self.lines.put((name, raw))
        self.lines.put((name, None))

    def kill(self) -> None:
        self.dead = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.dead = True

    def run(self, command: str, input: bytes | None, timeout: float | None,
            stream: OutputSink | None) -> tuple[int, str, str]:
        """Run one shell command; (exit code, stdout, stderr). Raises TimeoutError (the
        session is killed) or SessionBroken."""
        script = command.encode()
        data = input or b""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{len(script)} {len(data)}\n".encode() + script + data)
            self.proc.stdin.flush()
        except OSError as exc:
            self.dead = True
            raise SessionBroken(str(exc)) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        kept: dict[str, list[bytes]] = {"out": [], "err": []}
        held: dict[str, bytes | None] = {"out": None, "err": None}
        done = {"out": False, "err": False}
        rc = None

        def keep(name: str, raw: bytes) -> None:
            kept[name].append(raw)
            if stream is not None:
                stream(raw.rstrip(b"\n").decode(errors="replace"))

        while not (done["out"] and done["err"]):
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self.kill()
                raise TimeoutError
            try:
                name, raw = self.lines.get(timeout=wait)
            except queue.Empty:
                continue
            if raw is None:
                self.dead = True
                raise SessionBroken(b"".join(kept["err"]).decode(errors="replace")[-500:])
            line = raw.rstrip(b"\n")
            last = held[name]
            if line == self.mark or line.startswith(self.mark + b" "):
                done[name] = True
                if name == "out":
                    rc = int(line[len(self.mark) + 1:] or b"1")
                # the marker line was preceded by a newline of ours: drop it, keep content
                if last is not None and last != b"\n":
                    keep(name, last.rstrip(b"\n"))
                continue
            held[name] = raw
            if last is not None:
                keep(name, last)
        assert rc is not None
        return (rc, b"".join(kept["out"]).decode(errors="replace"),
                b"".join(kept["err"]).decode(errors="replace"))
