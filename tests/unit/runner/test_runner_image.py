"""How the runner image reaches a host (runner/image.py bring_to_host): through the app's
registry (push here, pull there); over SSH when there is no registry or the push or the pull
fails, saying why. The SSH stream itself: tests/integration/test_runner_image_over_ssh.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conveyor.runner import image
from conveyor.transport import Result

REF = "127.0.0.1:5000/conveyor-runner:0.1-abc"


class Host:
    def __init__(self, pull_rc: int = 0):
        self.pull_rc = pull_rc
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv, **kw):
        self.calls.append(tuple(argv))
        return Result(tuple(argv), self.pull_rc, "", "pull access denied" if self.pull_rc else "",
                      0.0)


@pytest.fixture
def setup(monkeypatch):
    pushes: list[int] = []
    loaded: list[str] = []
    monkeypatch.setattr(image, "build", lambda ref, log=None: None)
    monkeypatch.setattr(image, "load_over_ssh", lambda remote, ref: loaded.append(ref))

    class Local:
        def run(self, argv, **kw):
            rc = pushes[0] if pushes else 0
            return Result(tuple(argv), rc, "", "connection refused" if rc else "", 0.0)

    monkeypatch.setattr(image, "LocalTransport", Local)

    def remote(registry: bool = True, pull_rc: int = 0):
        cfg = SimpleNamespace(registry=SimpleNamespace(address="127.0.0.1:5000") if registry
                              else None)
        return SimpleNamespace(cfg=cfg, transport=Host(pull_rc), host="127.0.1.1")

    return remote, pushes, loaded


def test_through_the_registry_when_it_answers(setup):
    remote, _pushes, loaded = setup
    r = remote()
    image.bring_to_host(r, REF)
    assert r.transport.calls == [("docker", "pull", REF)] and loaded == []


@pytest.mark.parametrize("case", ["no registry", "push fails", "pull fails"])
def test_over_ssh_when_the_registry_cannot_carry_it(setup, case):
    remote, pushes, loaded = setup
    if case == "push fails":
        pushes.append(1)
    r = remote(registry=case != "no registry", pull_rc=1 if case == "pull fails" else 0)
    lines: list[str] = []
    image.bring_to_host(r, REF, lines.append)
    assert loaded == [REF]
    why = {"no registry": "this project has no [registry]",
           "push fails": "pushing it failed: connection refused",
           "pull fails": "pulling it on 127.0.1.1 failed: pull access denied"}[case]
    assert lines == [f"conveyor's runner image {REF}: {why}; sending it over SSH instead"]
