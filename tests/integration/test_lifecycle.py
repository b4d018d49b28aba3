"""The delete and expire playbooks through ansible-playbook (no cluster needed: they only touch files)."""
import json
import os
import sys

from modrun import ROOT, run_module, run_playbook

sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "plugins", "module_utils"))
from test__delete import make_backup  # noqa: E402  (real records, as backup_record writes them)

PLAYBOOKS = os.path.join(ROOT, "playbooks")


def inventory(tmp_path, storage, hosts):
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps({"all": {"vars": {"kubehooks_storage_dir": storage},
                                        "hosts": dict((host, {}) for host in hosts)}}))
    return str(path)


def test_delete_playbook_check_mode_then_delete_then_again(tmp_path):
    storage = str(tmp_path / "storage")
    bdir = make_backup(storage, "nightly", "prod")
    inv = inventory(tmp_path, storage, ["prod"])
    check = run_playbook(os.path.join(PLAYBOOKS, "delete.yml"), {"delete_backup": "nightly"}, inventory=inv,
                         extra_args=["--check"])
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Would delete nightly (Completed, 3 files" in check.stdout and os.path.isdir(bdir)
    done = run_playbook(os.path.join(PLAYBOOKS, "delete.yml"), {"delete_backup": "nightly"}, inventory=inv)
    assert done.returncode == 0 and "Deleted nightly" in done.stdout and not os.path.exists(bdir)
    again = run_playbook(os.path.join(PLAYBOOKS, "delete.yml"), {"delete_backup": "nightly"}, inventory=inv)
    assert again.returncode == 0 and "No backup nightly - nothing to delete" in again.stdout


def test_delete_playbook_refuses_a_run_in_progress(tmp_path):
    storage = str(tmp_path / "storage")
    bdir = make_backup(storage, "nightly", "prod", phase="InProgress")
    done = run_playbook(os.path.join(PLAYBOOKS, "delete.yml"), {"delete_backup": "nightly"},
                        inventory=inventory(tmp_path, storage, ["prod"]))
    assert done.returncode != 0 and "backup nightly is InProgress: its run may still be going" in done.stdout
    assert os.path.exists(os.path.join(bdir, "velero-backup.json"))


def test_expire_playbook_over_two_clusters(tmp_path):
    storage = str(tmp_path / "storage")
    for cluster in ("prod", "stage"):
        make_backup(storage, "old", cluster, ttl="1h")
        make_backup(storage, "young", cluster, ttl="720h")
    make_backup(storage, "stuck", "prod", ttl="1h", phase="InProgress")
    inv = inventory(tmp_path, storage, ["prod", "stage"])
    check = run_playbook(os.path.join(PLAYBOOKS, "expire.yml"), inventory=inv, extra_args=["--check"])
    assert check.returncode == 0 and check.stdout.count("Would delete 1 expired backups") == 2, check.stdout
    done = run_playbook(os.path.join(PLAYBOOKS, "expire.yml"), inventory=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Expired but left (run still going, or killed - thaw it first): stuck" in done.stdout
    listing = run_module("backup_info", {"storage_dir": storage})
    assert sorted((row["cluster"], row["name"]) for row in listing["backups"]) == [
        ("prod", "stuck"), ("prod", "young"), ("stage", "young")]
