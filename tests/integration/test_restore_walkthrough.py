"""The walkthrough's round trip on the real node: nginx_fsfreeze (requests served, backup with the
frozen nginx-logs copy), then nginx_fsfreeze_restore (data and namespace deleted, restored, nginx
serving, the access log back line for line), then the same backup restored into a mapped namespace
while the first restore runs.  Every file of the restored volumes has the sha256 the backup's archive
holds for it.  Holds the walkthrough lock (namespace nginx-example, shared with `make demo`)."""
import hashlib
import os
import tarfile
import time

import pytest

from localcluster import storage as lc_storage
from modrun import admin_api, run_module, run_playbook
import test_playbooks
from test_playbooks import (
    PLAYBOOKS,
    WALKTHROUGH_NS,
    local_images,
    pv_host_path,
    record_dir,
    run_detail,
)
from test_restore import delete_namespace, deployment_available
from test_restore import wait as wait_for

walkthrough = test_playbooks.walkthrough  # the fixture, for the tests here

pytestmark = pytest.mark.real_node


def archive_files(path):
    """{member path: sha256} of the regular files of a volume archive (gzip members: tarfile's r:gz reads them)."""
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile():
                out[os.path.normpath(member.name)] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    return out


def volume_files(root):
    out = {}
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (base == root and d == "lost+found")]
        for name in files:
            path = os.path.join(base, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    out[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return out


def test_walkthrough_round_trip_with_its_data(cluster, walkthrough, tmp_path):
    storage, report = str(tmp_path / "storage"), str(tmp_path / "restore-report.txt")
    lc_storage.recycle_released(admin_api())
    env = {"KUBECONFIG": cluster.kubeconfig}
    started = time.monotonic()
    proc = run_playbook(os.path.join(PLAYBOOKS, "nginx_fsfreeze.yml"), dict(local_images(cluster), storage_dir=storage),
                        env=env)
    walkthrough.append(pv_host_path(WALKTHROUGH_NS, "nginx-logs"))
    assert proc.returncode == 0, run_detail(proc)
    backed_up = time.monotonic()
    bdir = record_dir(storage, "nginx-hook-test")
    info = run_module("backup_info", {"backup_dir": bdir, "details": True})
    (volume,) = [v for v in info["volumes"] if v["pvc"] == "nginx-logs"]
    expected = archive_files(os.path.join(bdir, volume["path"]))
    with tarfile.open(os.path.join(bdir, volume["path"]), "r:gz") as tar:
        backed_up_log = tar.extractfile("./access.log").read().decode()
    assert "GET /?request=before-backup-3 " in backed_up_log

    proc = run_playbook(os.path.join(PLAYBOOKS, "nginx_fsfreeze_restore.yml"),
                        {"kubectl": cluster.kubectl, "storage_dir": storage, "volume_helper_image": cluster.node_image,
                         "report_path": report, "demo_restore_name": "round-trip"}, env=env)
    assert proc.returncode == 0, run_detail(proc)
    restored_at = time.monotonic()
    path = pv_host_path(WALKTHROUGH_NS, "nginx-logs")
    walkthrough.append(path)
    after = volume_files(path)
    with open(os.path.join(path, "access.log")) as handle:
        log = handle.read()
    assert log.startswith(backed_up_log) and log[len(backed_up_log):].count("\n") == 1, log[len(backed_up_log):]
    assert "GET /?request=after-restore " in log[len(backed_up_log):]
    others = {k: v for k, v in expected.items() if k != "access.log"}
    assert {k: after.get(k) for k in others} == others
    with open(report) as handle:
        shown = handle.read()
    assert "Volume data: claim nginx-example/nginx-logs succeeded, %d files" % volume["files"] in shown, shown
    assert " 200 " in shown

    # The same backup into a mapped namespace while the first restore runs: another (free) pool PV.
    copy = "nginx-example-copy"
    lc_storage.recycle_released(admin_api())
    try:
        result = run_module("restore_resources", {"kubeconfig": cluster.kubeconfig, "backup_dir": bdir,
                                                  "backup": "nginx-hook-test", "name": "round-trip-copy",
                                                  "namespace_mappings": {WALKTHROUGH_NS: copy},
                                                  "included_namespaces": [WALKTHROUGH_NS],
                                                  "volume_helper_image": cluster.node_image,
                                                  "volume_helper_timeout": 120}, timeout=300)
        assert result["phase"] == "Completed", result["error_messages"]
        assert [(v["target_namespace"], v["status"]) for v in result["volumes"]] == [(copy, "succeeded")]
        copied = volume_files(pv_host_path(copy, "nginx-logs"))
        assert {k: copied.get(k) for k in expected} == expected
        wait_for(lambda: deployment_available(copy, "nginx-deployment"), 120, "the copy's nginx Available")
        mapped_took = (result["duration"], result["volumes"][0]["duration"])
    finally:
        # the fsfreeze container's `sleep infinity` ignores SIGTERM: no 30 s grace period for the copy
        cluster.kubectl_run("delete", "pods", "--all", "--namespace", copy, "--grace-period=0", "--force", check=False)
        delete_namespace(copy)
    print("backup %.1fs, delete + restore playbook %.1fs, mapped restore %.1fs (module %.1fs, volume %.1fs)" % (
        (backed_up - started, restored_at - backed_up, time.monotonic() - restored_at) + mapped_took))
