"""The collection builds into a tarball that installs into a clean path and documents its modules."""
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))
with open(os.path.join(ROOT, "meta", "runtime.yml")) as _handle:
    # The modules that contact a cluster: the k8s action group (tests/unit/plugins/modules checks it).
    CLUSTER_MODULES = yaml.safe_load(_handle)["action_groups"]["k8s"]


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(out), ROOT])
    tarballs = list(out.glob("kubehooks-backup-*.tar.gz"))
    assert len(tarballs) == 1
    dest = tmp_path_factory.mktemp("collections")
    # Only the clean path: the checkout (importable for the other tests) must not count as installed.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest), ANSIBLE_NOCOLOR="1")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", str(dest), str(tarballs[0])],
        env=env)
    return tarballs[0], dest, env


def test_tarball_leaves_out_development_files(installed):
    tarball = installed[0]
    with tarfile.open(str(tarball)) as archive:
        names = archive.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    # Every file header says "see COPYING": the license text ships in the tarball.
    assert "COPYING" in names
    for playbook in ("backup", "thaw", "nginx_fsfreeze", "delete", "expire"):
        assert "playbooks/%s.yml" % playbook in names
    for unwanted in (".venv/", "tests/output/", "localcluster/", ".git/", "__pycache__"):
        assert not [name for name in names if unwanted in name + "/"], unwanted


def test_installed_collection_lists_its_modules(installed):
    dest, env = installed[1], installed[2]
    assert (dest / "ansible_collections" / "kubehooks" / "backup" / "MANIFEST.json").is_file()
    listing = run([os.path.join(BIN, "ansible-doc"), "-l", "kubehooks.backup"], env=env, cwd=str(dest))
    for module in MODULES:
        assert "kubehooks.backup." + module in listing


@pytest.mark.parametrize("module", MODULES)
def test_installed_module_docs_render(installed, module):
    dest, env = installed[1], installed[2]
    text = run([os.path.join(BIN, "ansible-doc"), "kubehooks.backup." + module], env=env, cwd=str(dest))
    assert "EXAMPLES" in text and "RETURN VALUES" in text
    # The shared auth fragment is rendered where a cluster is contacted, and only there.
    assert ("K8S_AUTH_HOST" in text) == (module in CLUSTER_MODULES)
