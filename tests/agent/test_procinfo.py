"""Container ids from /proc/<pid>/cgroup texts (cgroup v1 and v2, docker/containerd/cri-o)."""

from __future__ import annotations

import pytest

from qtap_fluent.agent.procinfo import container_id, container_id_from_cgroup

CID = "3f4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829"


@pytest.mark.parametrize("text,want", [
    (f"0::/system.slice/docker-{CID}.scope\n", CID),
    (f"12:memory:/docker/{CID}\n11:cpu:/docker/{CID}\n", CID),
    (f"0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-{CID}.scope\n", CID),
    (f"0::/kubepods/besteffort/pod1234/crio-{CID}\n", CID),
    ("0::/user.slice/user-1000.slice/session-2.scope\n", None),
    (f"0::/x/{CID}ff\n", None),  # 66 hex digits is not an id
])
def test_container_id_from_cgroup(text: str, want: str | None) -> None:
    assert container_id_from_cgroup(text) == want


def test_container_id_of_missing_process_is_none(tmp_path: object) -> None:
    assert container_id(2**22 + 12345, proc="/nonexistent-proc") is None
