"""The kubehooks.backup.restore role through ansible-playbook on the local cluster.

- check mode prints the plan and creates nothing; the real run restores into a mapped namespace, says
  where to follow its progress, and restore_info finds the restore by that name;
- a restore whose items partly fail for real (credentials that may not create Secrets) is
  PartiallyFailed: the play goes on, and fails with restore_fail_on_partial;
- a malformed archive makes the restore Failed and fails the play, with a clear message and nothing
  created;
- restore_status restores the status of a kind whose status nobody else writes (a custom resource with a
  status subresource and no controller), and only with restore_status.
"""
import glob
import json
import re
import os
import time
import uuid

import pytest

from localcluster.api import ApiError
from modrun import ROOT, admin_api, run_module, run_playbook, wait_for

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "restore.yml")

pytestmark = pytest.mark.real_node


def get_or_none(path):
    try:
        return admin_api().get(path)
    except ApiError:
        return None


def delete_namespace(name):
    try:
        admin_api().delete("/api/v1/namespaces/%s" % name)
    except ApiError:
        pass


def make_config(namespace):
    api = admin_api()
    base = "/api/v1/namespaces/%s" % namespace
    api.create(base + "/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                                      "data": {"greeting": "hello"}})
    api.create(base + "/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                                   "type": "Opaque", "stringData": {"password": "s3cret"}})


def backup(cluster, namespace, storage, name, **kwargs):
    args = {"kubeconfig": cluster.kubeconfig, "name": name, "storage_dir": storage, "cluster": "c1",
            "included_namespaces": [namespace]}
    args.update(kwargs)
    result = run_module("resource_export", args)
    assert not result.get("failed"), result
    return result


def run_restore(storage, tmp_path, backup_name, auth, check=False, **variables):
    """Run the role; ``variables`` are restore_* without the prefix.  (process, restore_result or None)."""
    result_file = str(tmp_path / ("result-%s.json" % uuid.uuid4().hex[:6]))
    extra = {"restore_backup": backup_name, "restore_storage_dir": storage, "restore_cluster": "c1",
             "restore_auth": auth, "restore_test_result_file": result_file}
    extra.update(("restore_" + key, value) for key, value in variables.items())
    proc = run_playbook(PLAYBOOK, extra_vars=extra, timeout=600, extra_args=["--check"] if check else [])
    result = None
    if os.path.exists(result_file):
        with open(result_file) as handle:
            result = json.load(handle)
    return proc, result


def test_check_mode_plans_then_the_role_restores_into_a_mapped_namespace(cluster, namespace, tmp_path):
    storage = str(tmp_path / "storage")
    make_config(namespace)
    backup(cluster, namespace, storage, "b1")
    target = "kh-role-%s" % uuid.uuid4().hex[:6]
    auth = {"kubeconfig": cluster.kubeconfig}
    try:
        proc, result = run_restore(storage, tmp_path, "b1", auth, check=True, name="planned",
                                   namespace_mappings={namespace: target})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "configmaps %s cfg create" % target in proc.stdout
        assert "secrets %s creds create" % target in proc.stdout
        assert result["phase"] == "New" and result["plan"]
        assert get_or_none("/api/v1/namespaces/%s" % target) is None
        assert not os.path.exists(os.path.join(storage, "c1", "restores", "planned"))
        assert "follow it" not in proc.stdout + proc.stderr                   # nothing to follow in check mode

        proc, result = run_restore(storage, tmp_path, "b1", auth, namespace_mappings={namespace: target})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert result["phase"] == "Completed", result["errors"]
        assert result["outcomes"]["created"] >= 3 and result["outcomes"]["failed"] == 0
        name = result["name"]
        assert name.startswith("b1-") and len(name) == len("b1-") + 14          # Velero's default name
        assert ("kubehooks.backup.restore_info -a 'name=%s storage_dir=%s cluster=c1'" % (name, storage)) in \
            " ".join(proc.stderr.split())                   # on stderr: stdout may be a callback's JSON
        assert "Restore %s of backup b1: Completed" % name in proc.stdout
        assert admin_api().get("/api/v1/namespaces/%s/configmaps/cfg" % target)["data"] == {"greeting": "hello"}
        assert get_or_none("/api/v1/namespaces/%s/configmaps/cfg" % namespace)["data"] == {"greeting": "hello"}
        shown = run_module("restore_info", {"storage_dir": storage, "name": name})   # found without cluster
        assert shown["restore"]["status"] == "Completed"
        assert shown["restore"]["items_restored"] == shown["restore"]["total_items"] == result["items_restored"]
        assert result["total_items"] == shown["restore"]["total_items"]       # the summary's "N of M" as recorded
        assert "Items: %d of %d" % (result["items_restored"], result["total_items"]) in proc.stdout
    finally:
        delete_namespace(target)


def test_partially_failed_goes_on_unless_fail_on_partial(cluster, namespace, tmp_path, sa_token):
    storage = str(tmp_path / "storage")
    make_config(namespace)
    backup(cluster, namespace, storage, "b1", included_resources=["configmaps", "secrets"])
    for path in ("configmaps/cfg", "secrets/creds"):
        admin_api().delete("/api/v1/namespaces/%s/%s" % (namespace, path))
    # Real refusals: these credentials may restore ConfigMaps but not Secrets.
    creds = sa_token(namespace, [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                                 {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]},
                                 {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    auth = {"host": creds["host"], "api_key": creds["token"], "ca_cert": creds["ca_cert"]}
    common = dict(included_namespaces=[namespace], include_cluster_resources=False)

    proc, result = run_restore(storage, tmp_path, "b1", auth, name="partial", **common)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert result["phase"] == "PartiallyFailed"
    assert result["outcomes"]["failed"] == 1 and any("creds" in e and "403" in e for e in result["errors"])
    assert admin_api().get("/api/v1/namespaces/%s/configmaps/cfg" % namespace)["data"] == {"greeting": "hello"}
    assert "Error: error restoring secrets/%s/creds" % namespace in proc.stdout
    assert api_key_not_shown(proc, creds["token"])

    proc, result = run_restore(storage, tmp_path, "b1", auth, name="strict", fail_on_partial=True, **common)
    assert proc.returncode != 0
    assert "Restore strict PartiallyFailed" in proc.stdout and result is None    # the play stopped there
    record = json.load(open(os.path.join(storage, "c1", "restores", "strict", "velero-restore.json")))
    assert record["status"]["phase"] == "PartiallyFailed"


def api_key_not_shown(proc, token):
    return token not in proc.stdout and token not in proc.stderr


def test_malformed_archive_fails_the_play_and_creates_nothing(cluster, namespace, tmp_path):
    storage = str(tmp_path / "storage")
    make_config(namespace)
    backup(cluster, namespace, storage, "b1")
    archive = os.path.join(storage, "c1", "backups", "b1", "b1.tar.gz")
    with open(archive, "wb") as handle:
        handle.write(b"this is not a gzip file\n" * 64)
    target = "kh-bad-%s" % uuid.uuid4().hex[:6]
    proc, result = run_restore(storage, tmp_path, "b1", {"kubeconfig": cluster.kubeconfig}, name="bad",
                               namespace_mappings={namespace: target})
    assert proc.returncode != 0
    assert "Restore bad Failed: 1 error(s) above" in proc.stdout, proc.stdout[-3000:]
    # the error is one line of the summary, not repeated in the verdict (ansible-core 2.19 prints the message twice)
    shown = proc.stdout.count("Restore bad Failed: 1 error(s) above")
    assert proc.stdout.count("b1.tar.gz is truncated or malformed") == shown > 0, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert result is None
    assert get_or_none("/api/v1/namespaces/%s" % target) is None
    record = json.load(open(os.path.join(storage, "c1", "restores", "bad", "velero-restore.json")))
    assert record["status"]["phase"] == "Failed" and record["status"]["failureReason"]


def crd(group, plural):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, group)},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": plural[:-1], "kind": "Gadget", "listKind": "GadgetList"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_restore_status_of_a_custom_resource(cluster, namespace, tmp_path):
    """Velero's restoreStatus: the backed-up status is written through the status subresource, only
    for the resource types named (a custom resource with no controller keeps it, so it can be seen)."""
    group = "kh%s.kubehooks.test" % uuid.uuid4().hex[:6]
    api = admin_api()
    api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(group, "gadgets"))
    targets = []
    try:
        wait_for(lambda: get_or_none("/apis/%s/v1" % group), 60, "the custom resource served")
        path = "/apis/%s/v1/namespaces/%s/gadgets" % (group, namespace)
        wait_for(lambda: _try_create(path, {"apiVersion": "%s/v1" % group, "kind": "Gadget",
                                            "metadata": {"name": "g1"}, "spec": {"size": 3}}), 60, "gadget g1")
        current = api.get(path + "/g1")
        current["status"] = {"phase": "Ready", "observed": 3}
        api.request("PUT", path + "/g1/status", current)
        storage = str(tmp_path / "storage")
        backup(cluster, namespace, storage, "b1", included_resources=["gadgets.%s" % group])
        for restore_status, expected in ((["gadgets.%s" % group], {"phase": "Ready", "observed": 3}), ([], None)):
            target = "kh-status-%s" % uuid.uuid4().hex[:6]
            targets.append(target)
            result = run_module("restore_resources", {
                "kubeconfig": cluster.kubeconfig, "backup": "b1", "storage_dir": storage, "cluster": "c1",
                "name": "st-%s" % target, "namespace_mappings": {namespace: target}, "restore_status": restore_status})
            assert result["phase"] == "Completed", result.get("error_messages") or result
            restored = api.get("/apis/%s/v1/namespaces/%s/gadgets/g1" % (group, target))
            assert restored["spec"] == {"size": 3}
            assert restored.get("status") == expected, restore_status
    finally:
        for target in targets:
            delete_namespace(target)
        try:
            api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.%s" % group)
        except ApiError:
            pass


def _try_create(path, body):
    try:
        return admin_api().create(path, body)
    except ApiError:
        time.sleep(1)
        return None


@pytest.mark.parametrize("cluster_resources", ["", "false", False])
def test_the_restore_playbook_takes_survey_answers_as_strings(cluster, namespace, tmp_path, cluster_resources):
    """playbooks/restore.yml, as an AWX job template runs it: every survey answer a string, the unset ones empty
    (on ansible-core < 2.19 an unset answer once reached the role as an empty string for a boolean)."""
    storage = str(tmp_path / "storage")
    make_config(namespace)
    backup(cluster, namespace, storage, "b1")
    target = "kh-pb-%s" % uuid.uuid4().hex[:6]
    extra = {"restore_backup": "b1", "kubehooks_storage_dir": storage, "kubehooks_cluster": "c1",
             "kubehooks_auth": {"kubeconfig": cluster.kubeconfig},
             "restore_job_namespace_mappings": "%s:%s" % (namespace, target),
             "restore_job_included_resources": "configmaps, namespaces", "restore_job_excluded_namespaces": "",
             "restore_job_include_cluster_resources": cluster_resources, "restore_job_existing_resource_policy": "",
             "restore_job_fail_on_partial": "", "restore_name": ""}
    try:
        proc = run_playbook(os.path.join(ROOT, "playbooks", "restore.yml"), extra_vars=extra, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert re.search(r"Restore b1-\d{14} of backup b1: Completed", proc.stdout), proc.stdout[-3000:]
        assert admin_api().get("/api/v1/namespaces/%s/configmaps/cfg" % target)["data"] == {"greeting": "hello"}
        assert get_or_none("/api/v1/namespaces/%s/secrets/creds" % target) is None      # not in included_resources
        restore_dir = glob.glob(os.path.join(storage, "c1", "restores", "b1-*"))
        record = json.load(open(os.path.join(restore_dir[0], "velero-restore.json")))
        assert record["spec"].get("includeClusterResources") is (None if cluster_resources == "" else False)
    finally:
        delete_namespace(target)
