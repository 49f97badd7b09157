"""`conveyor logs` of the local environment (every line redacted), and the tail of one
service's log shown after a failed `up`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from conveyor.commands import compose as composecmd
from conveyor.commands import docker as dockercmd
from conveyor.errors import ConveyorError
from conveyor.steps.compose_file import resolve_services
from conveyor.steps.docker_engine import check_docker
from conveyor.steps.local_containers import project_containers
from conveyor.targets.local import LocalStack
from conveyor.transport import Transport

LOG_TAIL = 30


def service_aliases(stack: LocalStack, names: Sequence[str]) -> list[str]:
    """`app` and `db` name the configured services, whatever the compose file calls them."""
    aliases = {"app": stack.app_service, "db": stack.db_service}
    return [aliases.get(n, n) for n in names]


def stream_logs(stack: LocalStack, transport: Transport, services: Sequence[str], *,
                follow: bool, since: str | None, tail: int | None,
                write: Callable[[str], None], keep_all: bool = False,
                note: Callable[[str], None] | None = None) -> int:
    """`compose logs --timestamps` after a header naming the project's containers and images,
    every line through the redactor, the health probes' lines left out unless `keep_all`.
    Returns compose's exit code."""
    from conveyor.ops.log_filter import ProbeFilter

    _, compose = check_docker(transport.run)
    resolved, _ = resolve_services(stack, compose, transport.run)
    wanted = service_aliases(stack, services)
    unknown = [s for s in wanted if s not in resolved]
    if unknown:
        raise ConveyorError(f"no service {', '.join(unknown)} in the compose file "
                            f"(services: {', '.join(resolved)})")
    shown = wanted or list(resolved)
    write(f"# compose project {stack.project}: "
          + ", ".join(f"{svc} ({resolved[svc] or '-'})" for svc in shown))
    probes = ProbeFilter(stack.cfg.app.health.path, write, keep_all=keep_all, tail=tail,
                         follow=follow)
    argv = composecmd.logs(compose, stack.project, stack.compose_files, wanted, follow=follow,
                           since=since, tail=probes.read_tail(), timestamps=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=stack.project_dir)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            probes(stack.redactor(raw.decode(errors="replace").rstrip("\n")))
    except KeyboardInterrupt:
        proc.terminate()
    probes.flush()
    if probes.note():
        (note or write)(probes.note() or "")
    return proc.wait()


def log_tail(stack: LocalStack, transport: Transport, service: str,
             lines: int = LOG_TAIL) -> list[str]:
    """The last lines of a service's container log (stdout and stderr), redacted."""
    try:
        containers = [c for c in project_containers(stack, transport.run) if c.service == service]
    except ConveyorError:
        return []
    if not containers:
        return []
    try:
        p = subprocess.run(dockercmd.logs(containers[0].id, tail=lines), check=False,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    text = p.stdout.decode(errors="replace")
    return [stack.redactor(line) for line in text.splitlines()[-lines:]]
