"""Whether a storage directory looks ephemeral (an execution-environment container's own filesystem)."""
import os

from ansible_collections.kubehooks.backup.plugins.module_utils import _storage

# /proc/self/mountinfo of an AWX job pod: the root is an overlay, /var/lib/kubehooks a PVC (ext4), a tmpfs.
EE_POD = """\
1201 1104 0:310 / / rw,relatime master:402 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1202 1201 0:312 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1210 1201 253:3 /pvc-1 /var/lib/kubehooks rw,relatime - ext4 /dev/mapper/vg-pvc rw
1211 1201 0:320 / /runner/tmp rw,relatime - tmpfs tmpfs rw,size=65536k
1212 1201 253:4 / /mnt/with\\040space rw,relatime - nfs4 server:/export rw
"""


def write(tmp_path, text):
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return str(path)


def test_home_directory_in_the_container_is_ephemeral(tmp_path):
    reason = _storage.ephemeral_reason("/runner/.local/share/kubehooks/storage", write(tmp_path, EE_POD))
    assert "overlay filesystem mounted at /" in reason and "container group" in reason


def test_a_volume_is_not_ephemeral(tmp_path):
    info = write(tmp_path, EE_POD)
    assert _storage.ephemeral_reason("/var/lib/kubehooks/storage", info) is None
    assert _storage.ephemeral_reason("/mnt/with space/backups", info) is None


def test_tmpfs_is_ephemeral(tmp_path):
    assert "tmpfs" in _storage.ephemeral_reason("/runner/tmp/s", write(tmp_path, EE_POD))


def test_a_prefix_is_not_a_parent(tmp_path):
    info = write(tmp_path, EE_POD + "1213 1201 0:330 / /var/lib/kube rw - tmpfs tmpfs rw\n")
    assert _storage.ephemeral_reason("/var/lib/kubehooks/x", info) is None


def test_unreadable_mountinfo_tells_nothing(tmp_path):
    assert _storage.ephemeral_reason("/anything", str(tmp_path / "missing")) is None


def test_this_machine(tmp_path):
    # Real /proc: /dev/shm is a tmpfs on Linux; the test's tmp_path is wherever pytest put it.
    if os.path.ismount("/dev/shm"):
        assert "tmpfs" in _storage.ephemeral_reason("/dev/shm/kubehooks")
    found = _storage.filesystem_of(str(tmp_path), _storage.parse_mountinfo(open("/proc/self/mountinfo").read()))
    assert found is not None and str(tmp_path).startswith(found[0])
