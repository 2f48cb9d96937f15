"""Lifecycle decisions without Docker: readiness retries, owners, the reaper, images to clean.

The Docker SDK is faked; /proc is a directory the test writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from netbed import docker_api, reaper
from netbed.errors import AgentConnectionError, AgentError, NotReady
from netbed.owner import Owner, current
from netbed.testbed import SERVICES, Testbed


# -- readiness ----------------------------------------------------------------
class FakeContainer:
    def __init__(self, service: str) -> None:
        self.name = f"tb-{service}-1"
        self.status = "running"
        self.labels = {"com.docker.compose.service": service}

    def reload(self) -> None:
        pass

    def logs(self, tail: int = 20) -> bytes:
        return b"agent log line\n"


class FakeContainers:
    def list(self, all: bool = False, filters: object = None, ignore_removed: bool = False) -> list[FakeContainer]:
        return [FakeContainer(s) for s in SERVICES]


class FakeHost:
    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass


class FakeEngine:
    containers = FakeContainers()


def _testbed_connecting_with(failures: list[Exception]) -> tuple[Testbed, list[str], list[float]]:
    tb = Testbed("tb", client=FakeEngine())  # type: ignore[arg-type]
    attempts: list[str] = []
    slept: list[float] = []

    def connect(name: str, container: object) -> FakeHost:
        attempts.append(name)
        if failures:
            raise failures.pop(0)
        return FakeHost()

    tb._connect = connect  # type: ignore[assignment,method-assign]
    tb.sleep = slept.append
    return tb, attempts, slept


def test_a_permanent_error_fails_at_once_with_its_message() -> None:
    tb, attempts, slept = _testbed_connecting_with([AgentError("client", "ping", "auth", "client: bad token")])
    with pytest.raises(NotReady, match="bad token"):
        tb.wait_ready(timeout=60)
    assert attempts == ["client"] and slept == []


@pytest.mark.parametrize("transient", [
    AgentConnectionError("cannot reach the client agent"), ConnectionRefusedError(111, "refused"),
    ConnectionResetError(104, "reset"),
])
def test_a_refused_or_reset_connection_is_retried(transient: Exception) -> None:
    tb, attempts, slept = _testbed_connecting_with([transient, transient])
    tb.wait_ready(timeout=60)
    assert attempts == ["client", "client", "client", "router", "server"] and len(slept) == 2


def test_a_host_that_never_answers_names_itself_and_shows_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    tb, attempts, _slept = _testbed_connecting_with([AgentConnectionError("refused")] * 1000)
    with pytest.raises(NotReady, match=r"(?s)client \(tb-client-1.*did not answer within 0 s.*agent log line"):
        tb.wait_ready(timeout=0)


# -- owners -------------------------------------------------------------------
def _fake_proc(tmp_path: Path, pid: int, state: str, start: int) -> Path:
    (tmp_path / str(pid)).mkdir(parents=True)
    fields = [state] + ["0"] * 18 + [str(start)] + ["0"] * 10
    (tmp_path / str(pid) / "stat").write_text(f"{pid} (py test) ) {' '.join(fields)}\n")
    return tmp_path


def test_owner_label_round_trip() -> None:
    me = current()
    assert me.pid == os.getpid() and me.start_ticks > 0
    assert Owner.parse(me.label) == me
    assert Owner.parse("") is None and Owner.parse("garbage") is None


def test_owner_is_gone_when_its_pid_is_free_a_zombie_or_reused(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 100, "S", 5000)
    _fake_proc(tmp_path, 200, "Z", 6000)
    assert not Owner(100, "h", 5000).is_gone(proc, "h")
    assert Owner(100, "h", 4999).is_gone(proc, "h"), "the PID now belongs to another process"
    assert Owner(200, "h", 6000).is_gone(proc, "h"), "a zombie has ended"
    assert Owner(300, "h", 1).is_gone(proc, "h")
    assert not Owner(300, "other-host", 1).is_gone(proc, "h"), "another machine's session is not judged"


# -- the reaper ---------------------------------------------------------------
class Resource:
    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.name = name
        self.attrs = {"Labels": labels}
        self.removed = False

    def remove(self, **_kw: object) -> None:
        self.removed = True


class Collection:
    def __init__(self, items: list[Resource]) -> None:
        self.items = items

    def list(self, all: bool = False, filters: dict[str, Any] | None = None,
             ignore_removed: bool = False) -> list[Resource]:
        wanted = (filters or {}).get("label", [])

        def matches(item: Resource) -> bool:
            labels = item.attrs["Labels"]
            for want in wanted:
                key, _, value = want.partition("=")
                if key not in labels or ("=" in want and labels[key] != value):
                    return False
            return True

        return [i for i in self.items if not i.removed and matches(i)]


def _labels(instance: str, owner: str) -> dict[str, str]:
    return {"io.netbed.testbed": "true", "io.netbed.instance": instance, "io.netbed.owner": owner}


def test_reaper_removes_only_testbeds_whose_owner_has_ended(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 100, "S", 5000)
    alive, dead = "100@h:5000", "999@h:1"
    fake = type("FakeDocker", (), {})()
    fake.containers = Collection([Resource("dead-client-1", _labels("dead", dead)),
                                  Resource("live-client-1", _labels("live", alive)),
                                  Resource("user-client-1", _labels("user", ""))])
    fake.networks = Collection([Resource("dead_clientnet", _labels("dead", dead))])
    fake.volumes = Collection([Resource("dead_unixsock", _labels("dead", dead))])
    assert reaper.reap_orphans(fake, proc, "h") == ["dead"]
    assert [r.name for r in fake.containers.items if r.removed] == ["dead-client-1"]
    assert fake.networks.items[0].removed and fake.volumes.items[0].removed
    assert reaper.reap_orphans(fake, proc, "h") == []


# -- images -------------------------------------------------------------------
class Image:
    def __init__(self, image_id: str, tags: list[str], labels: dict[str, str], layers: tuple[str, ...] = ()) -> None:
        self.id = self.short_id = image_id
        self.tags = tags
        self.labels = labels
        self.attrs = {"RootFS": {"Layers": list(layers)}}


def test_clean_removes_only_images_netbed_built() -> None:
    """(More cases, a child FROM each netbed image among them: tests/unit/test_own_images.py.)"""
    def built(repo: str) -> dict[str, str]:
        return {"io.netbed.testbed": "true", "io.netbed.image": repo}

    images = [Image("a", ["netbed/client:latest", "netbed/client:ci"], built("netbed/client"), ("L1", "L2")),
              Image("b", ["netbed/base:bookworm"], {**built("netbed/base"), "io.netbed.base": "true"}, ("L1",)),
              Image("c", [], built("netbed/client"), ("L1", "L3")),  # an earlier build a rebuild replaced
              Image("d", ["myapp/client:latest"], built("netbed/client"), ("L1", "L2", "L4"))]  # FROM netbed/client
    removed: list[str] = []

    class Images:
        def list(self, all: bool = False, filters: object = None) -> list[Image]:
            return images

        def remove(self, image_id: str, force: bool = False) -> None:
            removed.append(image_id)

    fake = type("FakeDocker", (), {"images": Images()})()
    assert docker_api.remove_images(fake) == ["netbed/client:latest", "netbed/base:bookworm", "c"]
    assert removed == ["a", "b", "c"]


# -- the subnet lock ----------------------------------------------------------
def test_the_subnet_lock_excludes_a_second_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from netbed.subnet_lock import lock_path, subnet_lock

    monkeypatch.setenv("NETBED_LOCK_DIR", str(tmp_path))
    assert lock_path().parent == tmp_path
    with subnet_lock(), open(lock_path(), "a+b") as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock_path(), "a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on leaving the `with`
    monkeypatch.setenv("NETBED_LOCK_DIR", str(tmp_path / "missing"))
    assert lock_path().parent != tmp_path / "missing"


def test_an_empty_netbed_instance_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # `make` exports NETBED_INSTANCE even when nobody set it (empty): that is the default
    # instance, not a bad name (CI's `make test` failed on it).
    monkeypatch.setenv("NETBED_INSTANCE", "")
    assert Testbed(client=object()).instance == "netbed"  # type: ignore[arg-type]
