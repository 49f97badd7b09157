"""The SSH transport: OpenSSH with one multiplexed master connection per host for the
transport's lifetime and (by default) one command session over it (see `session`). With
`direct_first`, the first command runs in a connection of its own instead (one handshake, no
master, no session): what a command that needs one round trip per host wants (`conveyor
status`); the master and session are set up by a second command, if one comes.

Host keys are always verified against the environment's known_hosts file
(StrictHostKeyChecking=yes): an unknown or changed key is refused with a hint, never accepted.
The remote command is `shlex.join(argv)`, every value quoted as one argument.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.errors import CommandFailed, ConveyorError, HostKeyError, HostUnreachable
from conveyor.transport.base import OutputSink, Result, Transport, timeout_error
from conveyor.transport.process import run_process
from conveyor.transport.session import Session, SessionBroken

_UNREACHABLE_HINT = "check the environment's `host` and that sshd runs there"
# seconds an idle master outlives its last client: a killed conveyor leaves no ssh process
# behind for longer; close() ends it at once (`ssh -O exit`)
CONTROL_PERSIST = 30


# an environment's `host` in conveyor.toml: [user@]host[:port]
HOST_SPEC = re.compile(
    r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]*)@)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{1,5}))?$"
)


def split_host(spec: str) -> tuple[str | None, str, int]:
    """`[user@]host[:port]` -> (user, host, port); ValueError when it is not one."""
    m = HOST_SPEC.match(spec)
    if not m:
        raise ValueError(f"not [user@]host[:port]: {spec[:200]!r}")
    return m.group("user"), m.group("host").strip("[]"), int(m.group("port") or 22)


@dataclass
class SshTarget:
    host: str
    user: str | None = None
    port: int = 22
    known_hosts: str | None = None
    identity: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_name: str | None = None  # the conveyor environment, named in hints (`hosts trust dev`)

    @property
    def display(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @classmethod
    def of_environment(cls, host: str, known_hosts: str | None, ssh_key: str | None,
                       root_dir: Path, env_name: str) -> SshTarget:
        """The target of an environment's `host`, `known_hosts` and `ssh_key` (paths relative
        to the project's directory `root_dir`)."""
        user, name, port = split_host(host)

        def path(p: str | None) -> str | None:
            if p is None:
                return None
            p = os.path.expanduser(p)
            return p if os.path.isabs(p) else str(root_dir / p)

        return cls(host=name, user=user, port=port, known_hosts=path(known_hosts),
                   identity=path(ssh_key), env_name=env_name)


# what OpenSSH's client prints when IT failed (exit 255), not the remote command
_SSH_FAILED = ("Connection refused", "Connection closed by", "Connection reset by",
               "Connection timed out", "kex_exchange_identification", "banner exchange",
               "Permission denied (", "Received disconnect from", "Could not resolve hostname",
               "Host key verification failed", "Too many authentication failures",
               "no such identity", "Bad owner or permissions", "Load key ")


def ssh_failed(returncode: int, stderr: str) -> bool:
    """Whether a direct `ssh HOST COMMAND` failed to connect (or to log in), from its exit code
    (255) and OpenSSH's own messages, rather than ran a command that exited 255."""
    return returncode == 255 and (host_key_refused(stderr) or any(
        line.startswith("ssh: ") or any(m in line for m in _SSH_FAILED)
        for line in stderr.splitlines()))


def host_key_refused(stderr: str) -> bool:
    """Whether OpenSSH's stderr says it refused the host key (unknown, changed, missing)."""
    return ("Host key verification failed" in stderr
            or "HOST IDENTIFICATION HAS CHANGED" in stderr
            or "No matching host key" in stderr
            or ("host key for" in stderr.lower() and "is known" in stderr)
            or "No ED25519 host key" in stderr)


class SshTransport(Transport):
    """OpenSSH with one multiplexed master connection per host for the transport's lifetime,
    and (by default) one remote shell session over it that runs the commands one by one."""

    def __init__(self, target: SshTarget, *, connect_timeout: float = 10.0,
                 session: bool = True, persist: int = CONTROL_PERSIST,
                 direct_first: bool = False) -> None:
        if not target.known_hosts:
            raise ConveyorError(f"no known_hosts file configured for {target.display}",
                                hint="set `known_hosts` for the environment; conveyor never "
                                "turns host key checking off")
        self.target = target
        self.name = target.display
        self.connect_timeout = connect_timeout
        self._dir = tempfile.mkdtemp(prefix="conveyor-ssh-")
        self._control = os.path.join(self._dir, "cm")
        self._log = os.path.join(self._dir, "master.log")
        self._pending: subprocess.Popen[bytes] | None = None  # the master, connecting
        self.connections_opened = 0
        self.commands_run = 0
        self.persist = persist
        self.sessions_opened = 0
        self.use_session = session
        self._session: Session | None = None
        self._master_lock = threading.Lock()
        self._master = False
        self._direct = direct_first  # the next command runs in a connection of its own
        from conveyor.transport import prewarm

        warm = prewarm.take(target, connect_timeout)
        if warm is not None:
            self.adopt(warm)

    @property
    def control_dir(self) -> str:
        """The private directory of the master's control socket (removed by `close`)."""
        return self._dir

    def base_argv(self, *, control: bool = True) -> list[str]:
        """ssh's options up to the host name; `control`: over the master's socket (else no
        master at all: OpenSSH takes the first value of an option, so it is never both)."""
        t = self.target
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={os.path.expanduser(t.known_hosts or '')}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
                "-o", f"ConnectTimeout={int(self.connect_timeout)}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-o", f"ControlPath={self._control}" if control else "ControlPath=none",
                "-p", str(t.port)]
        if not control:
            argv[-2:-2] = ["-o", "ControlMaster=no"]
        if t.identity:
            argv += ["-i", os.path.expanduser(t.identity), "-o", "IdentitiesOnly=yes"]
        if t.user:
            argv += ["-l", t.user]
        return argv

    def _master_argv(self) -> list[str]:
        # The master outlives this process only for a bounded idle time (ControlPersist
        # seconds), so a killed conveyor leaves no ssh process behind for long.
        return [*self.base_argv(), "-o", "ControlMaster=yes",
                "-o", f"ControlPersist={self.persist}", "-o", "ExitOnForwardFailure=yes",
                "-N", "-f", self.target.host]

    def start_master(self) -> None:
        """Start connecting the master in the background; the first command waits for it."""
        with self._master_lock:
            self._start_master()

    def _start_master(self) -> None:
        if self._master or self._pending is not None:
            return
        # its output goes to a file: a backgrounded master would hold a pipe open forever
        with open(self._log, "wb") as f:
            self._pending = subprocess.Popen(self._master_argv(), stdout=f, stderr=f,
                                             stdin=subprocess.DEVNULL)

    def _ensure_master(self) -> None:
        with self._master_lock:
            # the socket exists while the master lives (ssh removes it on exit); should a
            # master die uncleanly, ssh falls back to a direct connection: slower, still checked
            if self._master:
                if os.path.exists(self._control):
                    return
                # gone: idle past ControlPersist (a long runner-image build with no session
                # open) or died; connect again
                self._master = False
            self._start_master()
            p, self._pending = self._pending, None
            assert p is not None
            try:
                p.wait(timeout=self.connect_timeout + 20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise HostUnreachable(f"cannot connect to {self.target.display}: timed out",
                                      hint=_UNREACHABLE_HINT) from None
            if p.returncode != 0:
                raise self.connect_error(Path(self._log).read_text(errors="replace"))
            self.connections_opened += 1
            self._master = True

    def connect(self) -> None:
        """The master connection, now (a command would make it first anyway)."""
        self._ensure_master()

    def adopt(self, warm: SshTransport) -> None:
        """Take over `warm`'s master connection (made, or being made, for the same target and
        timeout by `conveyor.transport.prewarm`) instead of connecting again."""
        with self._master_lock, warm._master_lock:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir, self._control, self._log = warm._dir, warm._control, warm._log
            self._pending, warm._pending = warm._pending, None
            self._master, warm._master = warm._master, False

    def check_master(self) -> bool:
        """Whether the master connection is alive (`ssh -O check`)."""
        p = subprocess.run([*self.base_argv(), "-O", "check", self.target.host],
                           capture_output=True, check=False)
        return p.returncode == 0

    def connect_error(self, stderr: str) -> ConveyorError:
        """The error for an ssh connection that failed with `stderr`."""
        t = self.target
        if host_key_refused(stderr):
            changed = "HOST IDENTIFICATION HAS CHANGED" in stderr
            what = ("its host key does NOT match the one in" if changed
                    else "its host key is not in")
            return HostKeyError(
                f"refusing to connect to {t.display}: {what} {t.known_hosts}",
                hint="if you expect the new key, check its fingerprint out of band, then trust "
                f"it deliberately: `conveyor hosts trust {t.env_name or 'ENV'}` (shows the "
                "fingerprint and asks)",
            )
        return HostUnreachable(f"cannot connect to {t.display}: {stderr.strip()[-500:]}",
                               hint=_UNREACHABLE_HINT)

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """An interactive command on the host (stdin and stdout pipes, over the master)."""
        self._ensure_master()
        cmd = [*self.base_argv(), "-o", "ControlMaster=no", self.target.host, "--",
               self.remote_command(argv)]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)

    def remote_command(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        parts = [str(a) for a in argv]
        if env:
            parts = ["env", *(f"{k}={v}" for k, v in env.items()), *parts]
        return shlex.join(parts)

    def run(self, argv: Sequence[str], *, input: str | bytes | None = None,
            timeout: float | None = None, check: bool = True, stream: OutputSink | None = None,
            env: Mapping[str, str] | None = None) -> Result:
        args = tuple(str(a) for a in argv)
        command = self.remote_command(args, env)
        with self._master_lock:
            first, self._direct = self._direct, False
            direct = first and not self._master and self._pending is None
        if direct:
            return self._run_direct(args, command, input=input, timeout=timeout, check=check,
                                    stream=stream)
        self._ensure_master()
        self.commands_run += 1
        # a one-round-trip command (`first`) over a master made early: no session for it
        session = self._get_session() if self.use_session and not first else None
        t0 = time.monotonic()
        if session is not None:
            data = input.encode() if isinstance(input, str) else input
            try:
                rc, out, err = session.run(command, data, timeout, stream)
            except TimeoutError:
                raise timeout_error(args, timeout) from None
            except SessionBroken as exc:
                raise HostUnreachable(f"lost the connection to {self.name} while running "
                                      f"{shlex.join(args)[:200]}: {exc}",
                                      hint="check the host and the network; the command may "
                                      "have completed there") from None
            except BaseException:
                session.kill()
                raise
            finally:
                session.lock.release()
        else:
            cmd = [*self.base_argv(), "-o", "ControlMaster=no", self.target.host, "--", command]
            rc, out, err = run_process(cmd, input=input, timeout=timeout, stream=stream,
                                       env=None, cwd=None)
            if rc == 255 and "Host key verification failed" in err:
                raise self.connect_error(err)
        result = Result(args, rc, out, err, time.monotonic() - t0, host=self.name)
        if check and rc != 0:
            raise CommandFailed(args, rc, err or out, host=self.name)
        return result

    def _run_direct(self, args: tuple[str, ...], command: str, *, input: str | bytes | None,
                    timeout: float | None, check: bool, stream: OutputSink | None) -> Result:
        """One command in an ssh connection of its own (no master): one handshake."""
        self.connections_opened += 1
        self.commands_run += 1
        cmd = [*self.base_argv(control=False), self.target.host, "--", command]
        t0 = time.monotonic()
        rc, out, err = run_process(cmd, input=input, timeout=timeout, stream=stream, env=None,
                                   cwd=None)
        if ssh_failed(rc, err):
            raise self.connect_error(err)
        result = Result(args, rc, out, err, time.monotonic() - t0, host=self.name)
        if check and rc != 0:
            raise CommandFailed(args, rc, err or out, host=self.name)
        return result

    def _get_session(self) -> Session | None:
        """The command session, locked for the caller; None when it is busy (another thread)
        or cannot be started (commands then go in sessions of their own)."""
        if self._session is not None and not self._session.dead:
            if self._session.lock.acquire(blocking=False):
                if not self._session.dead:
                    return self._session
                self._session.lock.release()
            else:
                return None
        session = Session([*self.base_argv(), "-o", "ControlMaster=no", self.target.host])
        session.lock.acquire()
        try:
            rc, out, _ = session.run("echo conveyor-session-ok", None, 30, None)
            if rc != 0 or out.strip() != "conveyor-session-ok":
                raise SessionBroken(out)
        except (SessionBroken, TimeoutError):
            session.kill()
            self.use_session = False  # this host cannot: one ssh session per command
            return None
        self.sessions_opened += 1
        self._session = session
        return session

    def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:  # never waited for: still connecting, or backgrounded
            if pending.poll() is None:
                pending.kill()  # not yet authenticated: no master was forked
            pending.wait()
        if self._session is not None:
            self._session.close()
            self._session = None
        # the master is asked to exit whenever its socket exists (also one this object did not
        # count as started, e.g. after a timeout); it exits at once, not after ControlPersist
        if self._master or os.path.exists(self._control):
            try:
                subprocess.run([*self.base_argv(), "-O", "exit", self.target.host],
                               capture_output=True, stdin=subprocess.DEVNULL,
                               timeout=self.connect_timeout + 5, check=False)
            except subprocess.TimeoutExpired:
                pass
            self._master = False
        shutil.rmtree(self._dir, ignore_errors=True)
