"""`conveyor down`: stop and remove the local stack's containers (and with `volumes`, its data)."""

from __future__ import annotations

from collections.abc import Callable

from conveyor.commands import compose as composecmd
from conveyor.errors import ComposeFailed
from conveyor.steps.compose_file import resolve_services
from conveyor.steps.docker_engine import check_docker
from conveyor.steps.local_common import tail
from conveyor.targets.local import LocalStack
from conveyor.transport import Transport


def down(stack: LocalStack, transport: Transport, *, volumes: bool,
         sink: Callable[[str], None]) -> int:
    """`compose down` (its output through `sink`, redacted); forgets the recorded containers."""
    _, compose = check_docker(transport.run)
    resolve_services(stack, compose, transport.run)
    argv = composecmd.down(compose, stack.project, stack.compose_files, volumes=volumes)

    def show(line: str) -> None:
        if not line.rstrip().endswith("..."):  # v1's "Stopping x ... " before "... done"
            sink(stack.redactor(line))

    r = transport.run(argv, check=False, stream=show, timeout=600)
    state = stack.state_file()
    if state is not None:
        try:
            state.unlink()
        except OSError:
            pass
    if not r.ok:
        raise ComposeFailed(f"{compose.display} down failed (exit {r.returncode}):\n"
                            f"{tail(r.stdout + r.stderr, 10, indent='  ')}")
    return r.returncode
