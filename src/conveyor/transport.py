"""Run argv lists on a host: this machine, or a remote one over OpenSSH.

One interface for both (`run`, streamed output, timeouts, `put`/`get` of files). The SSH
transport uses the OpenSSH client with a ControlMaster, so a whole deploy opens one connection per
host, and always verifies the host key against the environment's known_hosts file
(StrictHostKeyChecking=yes): an unknown or changed key is refused with a hint, never accepted.
No shell string is built from user values: the remote command is `shlex.join(argv)`, every value
quoted as one argument.
"""

from __future__ import annotations

import contextlib
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
        # stdin is never inherited: an ssh client would otherwise read the caller's terminal
        try:
            p = subprocess.run(cmd, input=input.encode() if isinstance(input, str) else input,
                               stdin=None if input is not None else subprocess.DEVNULL,
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


# glue allowed between quoted argvs in `sh()`: fixed text only, never a user value
_SH_GLUE = frozenset({"&&", "||", ";", "|", "{", "}", "(", ")", ">", ">>", ">/dev/null",
                      "2>/dev/null", "2>&1", "!", "then", "fi", "if", "else"})


def sh(*parts: Sequence[str] | str) -> tuple[str, str, str]:
    """`sh -c SCRIPT` for several commands in one round trip.

    Each argv in `parts` is quoted with `shlex.join` (every value one argument); strings are
    glue from a fixed set (`&&`, `||`, `;`, `>/dev/null`, ...). No user value is ever spliced
    into the script unquoted.
    """
    words: list[str] = []
    for part in parts:
        if isinstance(part, str):
            if part not in _SH_GLUE:
                raise ValueError(f"not allowed as shell glue: {part!r}")
            words.append(part)
        else:
            words.append(shlex.join([str(a) for a in part]))
    return ("sh", "-c", " ".join(words))


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


# The remote side of a command session: reads framed commands on stdin and runs each one with
# `sh -c`. Frame: "<script bytes> <input bytes>\n", the script, the input. After a command its
# exit code follows a marker line on stdout, and a marker line ends its stderr. The input goes
# to the command through a pipe that is always drained, so the framing holds even when the
# command does not read all of it; nothing is written to disk.
SESSION_LOOP = r"""M=$1
while IFS=' ' read -r n m; do
  s=$(head -c "$n"; echo x); s=${s%x}
  if [ "$m" -gt 0 ]; then
    head -c "$m" | { sh -c "$s"; r=$?; cat >/dev/null; exit $r; }
  else
    sh -c "$s" </dev/null
  fi
  r=$?
  printf '\n%s %s\n' "$M" "$r"
  printf '\n%s\n' "$M" >&2
done
"""


class _SessionBroken(Exception):
    pass


class _Session:
    """One remote shell for many commands: a session costs the host a login shell (and its rc
    files) once instead of once per command. Commands run one at a time."""

    def __init__(self, argv: list[str]) -> None:
        import queue
        import secrets

        self.mark = f"::conveyor-{secrets.token_hex(8)}::".encode()
        self.proc = subprocess.Popen(
            argv + ["--", shlex.join(["sh", "-c", SESSION_LOOP, "conveyor-session",
                                      self.mark.decode()])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True).start()
        self.lock = threading.Lock()
        self.dead = False

    def _pump(self, name: str, pipe) -> None:
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
        import queue

        script = command.encode()
        data = input or b""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{len(script)} {len(data)}\n".encode() + script + data)
            self.proc.stdin.flush()
        except OSError as exc:
            self.dead = True
            raise _SessionBroken(str(exc)) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[bytes] = []
        err: list[bytes] = []
        held: dict[str, bytes | None] = {"out": None, "err": None}
        done = {"out": False, "err": False}
        rc = None
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
                raise _SessionBroken(b"".join(err).decode(errors="replace")[-500:])
            line = raw.rstrip(b"\n")
            if line == self.mark or line.startswith(self.mark + b" "):
                done[name] = True
                if name == "out":
                    rc = int(line[len(self.mark) + 1:] or b"1")
                last = held[name]
                # the marker line was preceded by a newline of ours: drop it, keep content
                if last is not None and last != b"\n":
                    (out if name == "out" else err).append(last.rstrip(b"\n"))
                    if stream is not None:
                        stream(last.rstrip(b"\n").decode(errors="replace"))
                continue
            last = held[name]
            held[name] = raw
            if last is not None:
                (out if name == "out" else err).append(last)
                if stream is not None:
                    stream(last.rstrip(b"\n").decode(errors="replace"))
        assert rc is not None
        return (rc, b"".join(out).decode(errors="replace"),
                b"".join(err).decode(errors="replace"))


class SshTransport(Transport):
    """OpenSSH with one multiplexed master connection per host for the transport's lifetime,
    and (by default) one remote shell session over it that runs the commands one by one."""

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10.0,
                 session: bool = True) -> None:
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
        self.commands_run = 0
        self.persist = 600
        self.sessions_opened = 0
        self.use_session = session
        self._session: _Session | None = None
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
            # the socket exists while the master lives (ssh removes it on exit); should a
            # master die uncleanly, ssh falls back to a direct connection: slower, still checked
            if self._master and os.path.exists(self._control):
                return
            # The master outlives this process only for a bounded idle time (ControlPersist
            # seconds), so a killed conveyor leaves no ssh process behind for long. Its output
            # goes to a file: a backgrounded master would hold a pipe open forever.
            argv = self.base_argv() + ["-o", "ControlMaster=yes",
                                       "-o", f"ControlPersist={self.persist}",
                                       "-o", "ExitOnForwardFailure=yes",
                                       "-N", "-f", self.target.host]
            log = os.path.join(self._dir, "master.log")
            with open(log, "wb") as f:
                try:
                    p = subprocess.run(argv, stdout=f, stderr=f, stdin=subprocess.DEVNULL,
                                       timeout=self.connect_timeout + 20)
                except subprocess.TimeoutExpired:
                    raise HostUnreachable(
                        f"cannot connect to {self.target.display}: timed out",
                        hint="check the environment's `host` and that sshd runs there") from None
            if p.returncode != 0:
                raise self._connect_error(Path(log).read_text(errors="replace"))
            self.connections_opened += 1
            self._master = True

    def _check_master(self) -> bool:
        p = subprocess.run(self.base_argv() + ["-O", "check", self.target.host],
                           capture_output=True)
        return p.returncode == 0

    def _connect_error(self, stderr: str) -> ConveyorError:
        t = self.target
        if ("Host key verification failed" in stderr or "HOST IDENTIFICATION HAS CHANGED" in stderr
                or "No matching host key" in stderr or "host key for" in stderr.lower()
                and "is known" in stderr or "No ED25519 host key" in stderr):
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
        self.commands_run += 1
        command = self.remote_command(argv, env)
        session = self._get_session() if self.use_session else None
        if session is not None:
            data = input.encode() if isinstance(input, str) else input
            t0 = time.monotonic()
            try:
                rc, out, err = session.run(command, data, timeout, stream)
            except TimeoutError:
                raise _timeout(argv, timeout, "", "") from None
            except _SessionBroken as exc:
                raise HostUnreachable(f"lost the connection to {self.name} while running "
                                      f"{shlex.join(argv)[:200]}: {exc}",
                                      hint="check the host and the network; the command may "
                                      "have completed there") from None
            except BaseException:
                session.kill()
                raise
            finally:
                session.lock.release()
            result = Result(argv, rc, out, err, time.monotonic() - t0, host=self.name)
            if check and rc != 0:
                raise CommandFailed(argv, rc, err or out, host=self.name)
            return result
        rc, out, err = _run_process(cmd, input=input, timeout=timeout, stream=stream, env=None,
                                    cwd=None)
        if rc == 255 and "Host key verification failed" in err:
            raise self._connect_error(err)
        result = Result(argv, rc, out, err, time.monotonic() - t0, host=self.name)
        if check and rc != 0:
            raise CommandFailed(argv, rc, err or out, host=self.name)
        return result

    def _get_session(self) -> _Session | None:
        """The command session, locked for the caller; None when it is busy (another thread)
        or cannot be started (commands then go in sessions of their own)."""
        if self._session is not None and not self._session.dead:
            if self._session.lock.acquire(blocking=False):
                if not self._session.dead:
                    return self._session
                self._session.lock.release()
            else:
                return None
        session = _Session(self.base_argv() + ["-o", "ControlMaster=no", self.target.host])
        session.lock.acquire()
        try:
            rc, out, _ = session.run("echo conveyor-session-ok", None, 30, None)
            if rc != 0 or out.strip() != "conveyor-session-ok":
                raise _SessionBroken(out)
        except (_SessionBroken, TimeoutError):
            session.kill()
            self.use_session = False  # this host cannot: one ssh session per command
            return None
        self.sessions_opened += 1
        self._session = session
        return session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._master:
            subprocess.run(self.base_argv() + ["-O", "exit", self.target.host],
                           capture_output=True)
            self._master = False
        shutil.rmtree(self._dir, ignore_errors=True)


def host_key_fingerprints(host: str, port: int = 22, timeout: float = 5.0) -> list[str]:
    """Fingerprints of the keys a host presents (for `conveyor hosts trust`), via ssh-keyscan."""
    return [fingerprint(line) for line in scan_host_keys(host, port, timeout)]


def known_hosts_name(host: str, port: int = 22) -> str:
    """How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def scan_host_keys(host: str, port: int = 22, timeout: float = 5.0) -> list[str]:
    """The known_hosts lines for the keys the host presents now (ssh-keyscan)."""
    try:
        p = subprocess.run(["ssh-keyscan", "-T", str(int(timeout)), "-p", str(port), host],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=timeout + 10)
    except FileNotFoundError:
        raise ConveyorError("ssh-keyscan not found", hint="install the OpenSSH client") from None
    except subprocess.TimeoutExpired:
        return []
    return sorted(ln for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#"))


def fingerprint(known_hosts_line: str) -> str:
    """`256 SHA256:... host (ED25519)` for one known_hosts line."""
    p = subprocess.run(["ssh-keygen", "-lf", "-"], input=known_hosts_line.strip() + "\n",
                       capture_output=True, text=True)
    return p.stdout.strip() or f"(cannot fingerprint: {p.stderr.strip()})"


def known_host_lines(known_hosts: str, host: str, port: int = 22) -> list[str]:
    """The lines of `known_hosts` that name this host (hashed names included)."""
    path = os.path.expanduser(known_hosts)
    if not os.path.exists(path):
        return []
    p = subprocess.run(["ssh-keygen", "-F", known_hosts_name(host, port), "-f", path],
                       capture_output=True, text=True)
    return [ln for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#")]


def key_of(known_hosts_line: str) -> tuple[str, str]:
    """(key type, base64 key) of a known_hosts line, whatever its host field and markers."""
    words = known_hosts_line.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return (words[1], words[2]) if len(words) >= 3 else ("", "")


def trust_host_keys(known_hosts: str, host: str, port: int, lines: Sequence[str]) -> None:
    """Replace what `known_hosts` says about host:port with `lines` (other hosts kept)."""
    path = os.path.expanduser(known_hosts)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if os.path.exists(path) and known_host_lines(path, host, port):
        p = subprocess.run(["ssh-keygen", "-R", known_hosts_name(host, port), "-f", path],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise ConveyorError(f"cannot update {path}: {p.stderr.strip()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".old")
    with open(path, "a") as f:
        for line in lines:
            f.write(line.rstrip("\n") + "\n")


def local_path(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(path)))
