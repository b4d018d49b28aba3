# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _layout: where a backup's files are, claiming a directory, the atomic writer."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.kubehooks.backup.plugins.module_utils import _layout as layout
from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.mark.parametrize("host,expected", [
    ("https://10.250.0.2:6443", "10.250.0.2_6443"),
    ("https://k8s.example.com/", "k8s.example.com"),
    ("http://localhost:8080/prefix", "localhost_8080_prefix"),
    ("", "cluster"),
])
def test_cluster_from_host(host, expected):
    assert layout.cluster_from_host(host) == expected


def test_resolve_backup_dir():
    assert layout.resolve_backup_dir("b", backup_dir_param="/x/y") == ("/x/y", None)
    assert layout.resolve_backup_dir("b", storage_dir="/s", cluster="c") == ("/s/c/backups/b", "c")
    assert layout.resolve_backup_dir("b", storage_dir="/s", api_host="https://10.0.0.1:6443") == \
        ("/s/10.0.0.1_6443/backups/b", "10.0.0.1_6443")
    assert layout.resolve_backup_dir("b", storage_dir="/s") == ("/s/backups/b", None)
    with pytest.raises(KubehooksError, match="invalid backup name"):
        layout.resolve_backup_dir("../b", storage_dir="/s")


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------

def test_default_storage_dir_follows_xdg():
    assert layout.default_storage_dir({"XDG_DATA_HOME": "/data"}, home="/home/u") == "/data/kubehooks/storage"
    assert layout.default_storage_dir({}, home="/home/u") == "/home/u/.local/share/kubehooks/storage"
    # the XDG spec: a relative XDG_DATA_HOME is ignored
    assert layout.default_storage_dir({"XDG_DATA_HOME": "rel"}, home="/home/u") == \
        "/home/u/.local/share/kubehooks/storage"


def test_backup_dir_keeps_velero_shape_and_separates_clusters():
    assert layout.backup_dir("/s", "nginx-hook-test") == "/s/backups/nginx-hook-test"
    assert layout.backup_dir("/s", "nginx-hook-test", "prod-eu") == "/s/prod-eu/backups/nginx-hook-test"
    assert layout.backup_dir("/s", "n", "a") != layout.backup_dir("/s", "n", "b")


def test_file_names_match_velero():
    assert layout.archive_path("/b", "n") == "/b/n.tar.gz"
    assert layout.log_path("/b", "n") == "/b/n-logs.gz"
    assert layout.resource_list_path("/b", "n") == "/b/n-resource-list.json.gz"
    assert layout.results_path("/b", "n") == "/b/n-results.gz"
    assert layout.record_path("/b") == "/b/velero-backup.json"
    assert layout.hook_plan_path("/b", "n") == "/b/n-hook-plan.json"
    assert layout.hook_log_path("/b", "n") == "/b/n-hooks.jsonl"
    assert layout.progress_path("/b", "n") == "/b/n-progress.json"


def test_names_of_the_files_later_features_write():
    assert layout.volumes_dir("/b", "n") == "/b/n-volumes"
    assert layout.volume_archive("/b", "n", "ns", "pod-0", "data") == "/b/n-volumes/ns/pod-0/data.tar.gz"
    assert layout.volumes_index("/b", "n") == "/b/n-volumes.json.gz"
    assert layout.thaw_state("/b", "n") == "/b/n-thaw-state.jsonl"
    assert layout.watchdog_record("/b", "n") == "/b/n-watchdog.json"
    assert layout.restore_dir("/s", "prod", "r1") == "/s/prod/restores/r1"
    assert layout.restore_dir("/s", None, "r1") == "/s/restores/r1"
    with pytest.raises(KubehooksError, match="invalid restore name"):
        layout.restore_dir("/s", "prod", "../r")


def test_restore_file_names_match_velero():
    """object_store_layout.go: restore-<name>-logs.gz, -results.gz, -resource-list.json.gz."""
    assert layout.restore_files_of("/s/restores/r1", "r1") == {
        "record": "/s/restores/r1/velero-restore.json",
        "logs": "/s/restores/r1/restore-r1-logs.gz",
        "results": "/s/restores/r1/restore-r1-results.gz",
        "resource_list": "/s/restores/r1/restore-r1-resource-list.json.gz",
    }
    assert layout.restores_root("/s", "prod") == "/s/prod/restores"
    with pytest.raises(KeyError):
        layout.restore_file("/r", "r1", "hook_plan")


@pytest.mark.parametrize("bdir, root", [("/s/prod/backups/b1", "/s/prod"), ("/s/backups/b1", "/s"),
                                        ("/elsewhere/b1", "/elsewhere")])
def test_location_of_backup_dir(bdir, root):
    assert layout.location_of_backup_dir(bdir) == root


def test_a_restore_directory_is_claimed_once(tmp_path):
    rdir = str(tmp_path / "restores" / "r1")
    layout.claim_backup_dir(rdir, "r1", what="restore")
    assert mode(rdir) == 0o700 and mode(str(tmp_path / "restores")) == 0o700
    with pytest.raises(KubehooksError, match="restore r1 already exists"):
        layout.claim_backup_dir(rdir, "r1", what="restore")


def test_files_of_names_every_file_by_role():
    files = layout.files_of("/b", "n")
    assert files["record"] == "/b/velero-backup.json" and files["hook_log"] == "/b/n-hooks.jsonl"
    assert set(files) == {"record", "archive", "logs", "resource_list", "results", "hook_plan", "hook_log",
                          "progress", "volumes_index", "thaw_state", "watchdog"}
    assert files["volumes_index"] == "/b/n-volumes.json.gz" and files["thaw_state"] == "/b/n-thaw-state.jsonl"


@pytest.mark.parametrize("name", ["", "UPPER", "a/b", "..", "-x", "x-", "a..b", "a_b", "x" * 254, None])
def test_invalid_backup_names(name):
    with pytest.raises(KubehooksError):
        layout.check_backup_name(name)


@pytest.mark.parametrize("name", ["nginx-hook-test", "a", "daily.2026-01-01", "nightly-20260101000000"])
def test_valid_backup_names(name):
    assert layout.check_backup_name(name) == name


@pytest.mark.parametrize("cluster", ["", "a/b", "..", ".hidden", "backups", "Restores", "has space", None])
def test_invalid_cluster_names(cluster):
    with pytest.raises(KubehooksError):
        layout.check_cluster_name(cluster)


@pytest.mark.parametrize("text, slug", [
    ("prod-eu", "prod-eu"),
    ("https://api.example.com:6443", "https_api.example.com_6443"),
    ("backups", "cluster_backups"),
    ("", "cluster"),
    ("../../etc", "etc"),
])
def test_cluster_slug(text, slug):
    assert layout.cluster_slug(text) == slug
    layout.check_cluster_name(slug)


def test_claim_backup_dir_is_owner_only_and_claims_the_name(tmp_path):
    bdir = layout.claim_backup_dir(layout.backup_dir(str(tmp_path), "b1", "prod"), "b1")
    assert bdir == str(tmp_path / "prod" / "backups" / "b1")
    assert mode(bdir) == 0o700
    with pytest.raises(KubehooksError, match="already exists"):
        layout.claim_backup_dir(layout.backup_dir(str(tmp_path), "b1", "prod"), "b1")
    layout.claim_backup_dir(layout.backup_dir(str(tmp_path), "b1", "staging"), "b1")  # another cluster


def test_claim_adopts_a_directory_without_a_record_only_when_asked(tmp_path):
    bdir = str(tmp_path / "b1")
    os.mkdir(bdir)
    with pytest.raises(KubehooksError, match="already exists"):
        layout.claim_backup_dir(bdir, "b1")
    assert layout.claim_backup_dir(bdir, "b1", adopt_unrecorded=True) == bdir
    (tmp_path / "b1" / "velero-backup.json").write_text(u"{}")
    with pytest.raises(KubehooksError, match="already exists"):
        layout.claim_backup_dir(bdir, "b1", adopt_unrecorded=True)


def test_claim_reports_an_unusable_parent(tmp_path):
    (tmp_path / "file").write_text(u"x")
    with pytest.raises(KubehooksError, match="cannot create the backup directory"):
        layout.claim_backup_dir(str(tmp_path / "file" / "b1"), "b1")


def test_atomic_write_keeps_the_old_file_when_it_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "velero-backup.json")
    layout.atomic_write(path, b"first")
    assert mode(path) == 0o600

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(layout.os, "replace", broken_replace)
    with pytest.raises(KubehooksError, match="cannot write the backup record .*No space left"):
        layout.atomic_write(path, b"second", what="the backup record")
    monkeypatch.undo()
    assert open(path, "rb").read() == b"first"                # the old file is intact
    assert os.listdir(str(tmp_path)) == ["velero-backup.json"]  # no temporary file left


def test_atomic_write_without_sync_writes_the_same(tmp_path):
    path = str(tmp_path / "p.json")
    layout.atomic_write(path, b"{}", sync=False)
    assert open(path, "rb").read() == b"{}" and mode(path) == 0o600


def test_ensure_dir_makes_every_missing_level_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "a" / "b" / "c"
        assert layout.ensure_dir(str(target)) == str(target)
        assert layout.ensure_dir(str(target)) == str(target)  # again: nothing to do
    finally:
        os.umask(old)
    for level in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert level.stat().st_mode & 0o777 == 0o700, level


# --- a saved file read back as input (the thaw's hook plan) ----------------------------------------

def private_file(tmp_path):
    directory = tmp_path / "b1"
    directory.mkdir(mode=0o700)
    os.chmod(str(directory), 0o700)
    path = directory / "b1-hook-plan.json"
    path.write_text("[]")
    os.chmod(str(path), 0o600)
    return path


def test_an_owner_only_file_is_trusted(tmp_path):
    assert layout.untrusted_file_problem(str(private_file(tmp_path))) is None


@pytest.mark.parametrize("target,mode,fragment", [
    ("file", 0o620, "the file"), ("file", 0o602, "the file"),
    ("directory", 0o770, "the directory"), ("directory", 0o707, "the directory"),
])
def test_a_file_others_could_write_is_not_trusted(tmp_path, target, mode, fragment):
    path = private_file(tmp_path)
    os.chmod(str(path if target == "file" else path.parent), mode)
    problem = layout.untrusted_file_problem(str(path))
    assert fragment in problem and "writable by its group or others (mode %04o)" % mode in problem


def test_a_file_of_another_user_or_a_symlink_is_not_trusted(tmp_path):
    path = private_file(tmp_path)
    other = os.geteuid() + 1
    assert "owned by uid %d, not by the running user (uid %d)" % (os.geteuid(), other) in \
        layout.untrusted_file_problem(str(path), uid=other)
    link = path.parent / "link.json"
    link.symlink_to(path)
    assert "not a regular file" in layout.untrusted_file_problem(str(link))
