"""Run a process on this machine: `run_process` (captured and optionally streamed output, a
timeout that kills the whole process group) and `LocalTransport`."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from conveyor.errors import CommandFailed, ConveyorError
from conveyor.transport.base import OutputSink, Result, Transport, timeout_error


def run_process(cmd: Sequence[str], *, input: str | bytes | None, timeout: float | None,
                stream: OutputSink | None, env: Mapping[str, str] | None,
                cwd: str | os.PathLike[str] | None) -> tuple[int, str, str]:
    """Run a process; stream stdout (and stderr) lines to `stream` while capturing both."""
    data = input.encode() if isinstance(input, str) else input
    if stream is None:
        # stdin is never inherited: an ssh client would otherwise read the caller's terminal
        try:
            p = subprocess.run(cmd, input=data,
                               stdin=None if data is not None else subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, env=env, cwd=cwd,
                               start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            raise timeout_error(cmd, timeout) from None
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)
    out: list[str] = []
    err: list[str] = []

    def pump(pipe: IO[bytes], sink: list[str]) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace")
            sink.append(line)
            stream(line.rstrip("\n"))
        pipe.close()

    threads = [threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    if data is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise timeout_error(cmd, timeout) from None
    for t in threads:
        t.join()
    return proc.returncode, "".join(out), "".join(err)


class LocalTransport(Transport):
    name = "local"

    def __init__(self, cwd: str | os.PathLike[str] | None = None) -> None:
        self.cwd = cwd

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None,
            timeout: float | None = None, check: bool = True, stream: OutputSink | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        args = tuple(str(a) for a in argv)
        full_env = {**os.environ, **env} if env else None
        t0 = time.monotonic()
        try:
            rc, out, err = run_process(args, input=input, timeout=timeout, stream=stream,
                                       env=full_env, cwd=self.cwd)
        except FileNotFoundError:
            raise ConveyorError(f"command not found: {args[0]}",
                                hint=f"install {args[0]} or put it on PATH") from None
        result = Result(args, rc, out, err, time.monotonic() - t0)
        if check and rc != 0:
            raise CommandFailed(args, rc, err or out)
        return result


def local_path(path: str | os.PathLike[str]) -> Path:
    """A path on this machine, `~` expanded."""
    return Path(os.path.expanduser(str(path)))
