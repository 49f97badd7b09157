"""Run argv lists on a host: this machine, or a remote one over OpenSSH.

One interface for both (`run`, streamed output, timeouts, `put`/`get` of files). The SSH
transport uses the OpenSSH client with a ControlMaster, so a whole deploy opens one connection per
host, and always verifies the host key against the environment's known_hosts file
(StrictHostKeyChecking=yes): an unknown or changed key is refused with a hint, never accepted.
No shell string is built from user values: the remote command is `shlex.join(argv)`, every value
quoted as one argument.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from conveyor.errors import CommandFailed, ConveyorError

OutputSink = Callable[[str], None]


class HostKeyError(ConveyorError):
    exit_code = 4


class HostUnreachable(ConveyorError):
    exit_code = 4


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    host: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _run_process(cmd: Sequence[str], *, input: str | bytes | None, timeout: float | None,
                 stream: OutputSink | None, env: Mapping[str, str] | None,
                 cwd: str | os.PathLike | None) -> tuple[int, str, str]:
    """Run a process; stream stdout (and stderr) lines to `stream` while capturing both."""
    if stream is None:
        try:
            p = subprocess.run(cmd, input=input.encode() if isinstance(input, str) else input,
                               capture_output=True, timeout=timeout, env=env, cwd=cwd,
                               start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise _timeout(cmd, timeout, exc.stdout, exc.stderr) from None
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            start_new_session=True)
    out: list[str] = []
    err: list[str] = []

    def pump(pipe, sink: list[str]) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace")
            sink.append(line)
            stream(line.rstrip("\n"))
        pipe.close()

    threads = [threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    if input is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(input.encode() if isinstance(input, str) else input)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise _timeout(cmd, timeout, "".join(out), "".join(err)) from None
    for t in threads:
        t.join()
    return proc.returncode, "".join(out), "".join(err)


def _timeout(cmd, timeout, stdout, stderr) -> ConveyorError:
    return ConveyorError(f"timed out after {timeout:g} s: {shlex.join(cmd)}",
                         hint="raise the timeout, or check what the command waits for")


class Transport:
    """Base class. `name` is the host shown in messages ('local' for this machine)."""

    name = "local"

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None,
            timeout: float | None = None, check: bool = True, stream: OutputSink | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        raise NotImplementedError

    def put(self, data: bytes | str, path: str, mode: int = 0o600) -> None:
        """Write `data` to `path` on the host, created with `mode` (never world-readable first)."""
        self.run(["sh", "-c", 'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1" && '
                 'chmod "$2" "$1"', "put", path, f"{mode:o}"], input=data)

    def get(self, path: str) -> bytes:
        r = self.run(["cat", path])
        return r.stdout.encode()

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalTransport(Transport):
    name = "local"

    def __init__(self, cwd: str | os.PathLike | None = None) -> None:
        self.cwd = cwd

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None) -> Result:
        argv = tuple(str(a) for a in argv)
        full_env = {**os.environ, **env} if env else None
        t0 = time.monotonic()
        try:
            rc, out, err = _run_process(argv, input=input, timeout=timeout, stream=stream,
                                        env=full_env, cwd=self.cwd)
        except FileNotFoundError:
            raise ConveyorError(f"command not found: {argv[0]}",
                                hint=f"install {argv[0]} or put it on PATH") from None
        result = Result(argv, rc, out, err, time.monotonic() - t0)
        if check and rc != 0:
            raise CommandFailed(argv, rc, err or out)
        return result


@dataclass
class SshTarget:
    host: str
    user: str | None = None
    port: int = 22
    known_hosts: str | None = None
    identity: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


class SshTransport(Transport):
    """OpenSSH with one multiplexed master connection per host for the transport's lifetime."""

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10.0) -> None:
        if not target.known_hosts:
            raise ConveyorError(f"no known_hosts file configured for {target.display}",
                                hint="set `known_hosts` for the environment; conveyor never "
                                "turns host key checking off")
        self.target = target
        self.name = target.display
        self.connect_timeout = connect_timeout
        self._dir = tempfile.mkdtemp(prefix="conveyor-ssh-")
        self._control = os.path.join(self._dir, "cm")
        self.connections_opened = 0
        self._master_lock = threading.Lock()
        self._master = False

    def base_argv(self) -> list[str]:
        t = self.target
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={os.path.expanduser(t.known_hosts or '')}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
                "-o", f"ConnectTimeout={int(self.connect_timeout)}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-o", f"ControlPath={self._control}", "-p", str(t.port)]
        if t.identity:
            argv += ["-i", os.path.expanduser(t.identity), "-o", "IdentitiesOnly=yes"]
        if t.user:
            argv += ["-l", t.user]
        return argv

    def _ensure_master(self) -> None:
        with self._master_lock:
            if self._master and self._check_master():
                return
            argv = self.base_argv() + ["-o", "ControlMaster=yes", "-o", "ControlPersist=yes",
                                       "-N", "-f", self.target.host]
            p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               timeout=self.connect_timeout + 20)
            if p.returncode != 0:
                raise self._connect_error(p.stderr)
            self.connections_opened += 1
            self._master = True

    def _check_master(self) -> bool:
        p = subprocess.run(self.base_argv() + ["-O", "check", self.target.host],
                           capture_output=True)
        return p.returncode == 0

    def _connect_error(self, stderr: str) -> ConveyorError:
        t = self.target
        if ("Host key verification failed" in stderr or "HOST IDENTIFICATION HAS CHANGED" in stderr
                or "No matching host key" in stderr or "No ED25519 host key" in stderr):
            changed = "HOST IDENTIFICATION HAS CHANGED" in stderr
            what = ("its host key does NOT match the one in" if changed
                    else "its host key is not in")
            return HostKeyError(
                f"refusing to connect to {t.display}: {what} {t.known_hosts}",
                hint="if you expect the new key, check its fingerprint out of band, then trust "
                "it deliberately: `conveyor hosts trust ENV` (shows the fingerprint and asks)",
            )
        return HostUnreachable(f"cannot connect to {t.display}: {stderr.strip()[-500:]}",
                               hint="check the environment's `host` and that sshd runs there")

    def remote_command(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        parts = [str(a) for a in argv]
        if env:
            parts = ["env", *(f"{k}={v}" for k, v in env.items()), *parts]
        return shlex.join(parts)

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None) -> Result:
        argv = tuple(str(a) for a in argv)
        self._ensure_master()
        cmd = self.base_argv() + ["-o", "ControlMaster=no", self.target.host, "--",
                                  self.remote_command(argv, env)]
        t0 = time.monotonic()
        rc, out, err = _run_process(cmd, input=input, timeout=timeout, stream=stream, env=None,
                                    cwd=None)
        if rc == 255 and "Host key verification failed" in err:
            raise self._connect_error(err)
        result = Result(argv, rc, out, err, time.monotonic() - t0, host=self.name)
        if check and rc != 0:
            raise CommandFailed(argv, rc, err or out, host=self.name)
        return result

    def close(self) -> None:
        if self._master:
            subprocess.run(self.base_argv() + ["-O", "exit", self.target.host],
                           capture_output=True)
            self._master = False
        shutil.rmtree(self._dir, ignore_errors=True)


def host_key_fingerprints(host: str, port: int = 22, timeout: float = 5.0) -> list[str]:
    """Fingerprints of the keys a host presents (for `conveyor hosts trust`), via ssh-keyscan."""
    p = subprocess.run(["ssh-keyscan", "-T", str(int(timeout)), "-p", str(port), host],
                       capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln and not ln.startswith("#")]
    if not lines:
        return []
    fp = subprocess.run(["ssh-keygen", "-lf", "-"], input="\n".join(lines) + "\n",
                        capture_output=True, text=True)
    return fp.stdout.splitlines()


def local_path(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(path)))
