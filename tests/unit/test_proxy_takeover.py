"""An environment that moves from strategy = "recreate" to "zero-downtime" without `conveyor
setup`: the zero-downtime deploy's proxy step creates a missing proxy when nothing publishes
the port, refuses (before anything changes) when the serving container publishes it itself,
and with `--strategy recreate` leaves the proxy to the takeover step after the stop, whose undo
removes it again so that the old container gets its port back."""

from __future__ import annotations

import pytest
from tests.unit.test_zero_downtime_plan import IMAGE, remote

from conveyor.errors import NotSetUp
from conveyor.plan import StepIO
from conveyor.records import DeploymentRecord
from conveyor.state.deploy import DeployState
from conveyor.steps import proxy
from conveyor.transport import Result, Transport

PUBLISHING = {"Name": "/notes-prod-app", "State": {"Running": True},
              "HostConfig": {"PortBindings": {"8000/tcp": [{"HostIp": "127.0.2.1",
                                                            "HostPort": "8080"}]}}}
BEHIND = {"Name": "/notes-prod-app", "State": {"Running": True},
          "HostConfig": {"PortBindings": {}}}


class Host(Transport):
    def __init__(self, proxy_state: str | None):
        self.proxy_state = proxy_state  # "true", "false" or None (missing)
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(argv)
        self.calls.append(argv)
        if argv[:2] == ("docker", "inspect") and "{{.State.Running}}" in argv:
            if self.proxy_state is None:
                return Result(argv, 1, "", "Error: No such object: notes-prod-proxy", 0.0)
            return Result(argv, 0, self.proxy_state + "\n", "", 0.0)
        return Result(argv, 0, "", "", 0.0)

    def ran(self, *words: str) -> bool:
        return any(all(w in " ".join(a) for w in words) for a in self.calls)


def state(r, current) -> DeployState:
    rec = DeploymentRecord(id="d1", app="notes", env="prod", kind="promote", who="alice",
                           started_at=0.0, image=IMAGE.ref)
    return DeployState(r, rec, IMAGE, lock_id="d1", current=current)


def test_published_reads_the_containers_own_port_bindings():
    assert proxy.published(PUBLISHING) == ["127.0.2.1:8080"]
    assert proxy.published(BEHIND) == [] and proxy.published(None) == []


def test_a_running_proxy_is_left_alone(tmp_path):
    r, host = remote(tmp_path), Host("true")
    proxy.proxy_check_step(r, recreate=False).action(state(r, BEHIND), StepIO("proxy", host))
    assert len(host.calls) == 1


def test_a_missing_proxy_is_created_when_nothing_publishes_the_port(tmp_path):
    r, host = remote(tmp_path), Host(None)
    io = StepIO("proxy", host)
    proxy.proxy_check_step(r, recreate=False).action(state(r, None), io)
    assert host.ran("docker run", "--name notes-prod-proxy", "127.0.2.1:8080:80")
    assert "created it" in io.notes[0]


def test_a_recreate_deployed_container_publishing_the_port_is_refused_with_the_way_out(tmp_path):
    r, host = remote(tmp_path), Host(None)
    with pytest.raises(NotSetUp) as exc:
        proxy.proxy_check_step(r, recreate=False).action(state(r, PUBLISHING), StepIO("p", host))
    assert "notes-prod-app publishes 127.0.2.1:8080 itself" in str(exc.value)
    assert "nothing was changed" in str(exc.value)
    assert "conveyor deploy prod --strategy recreate" in (exc.value.hint or "")
    assert not host.ran("docker run")


def test_strategy_recreate_takes_the_port_over_after_the_stop_and_gives_it_back_on_undo(tmp_path):
    r, host = remote(tmp_path), Host(None)
    st = state(r, PUBLISHING)
    proxy.proxy_check_step(r, recreate=True).action(st, StepIO("proxy", host))
    assert st.proxy_takeover and not host.ran("docker run")
    take = proxy.proxy_takeover_step(r)
    take.action(st, StepIO("takeover", host))
    assert host.ran("docker run", "--name notes-prod-proxy", "127.0.2.1:8080:80")
    assert take.undo is not None
    take.undo(st, StepIO("takeover", host))
    assert host.calls[-1] == ("docker", "rm", "--force", "notes-prod-proxy")


def test_the_takeover_does_nothing_when_the_proxy_was_in_place(tmp_path):
    r, host = remote(tmp_path), Host("true")
    st = state(r, BEHIND)
    take = proxy.proxy_takeover_step(r)
    take.action(st, StepIO("takeover", host))
    assert take.undo is not None
    take.undo(st, StepIO("takeover", host))
    assert host.calls == []
