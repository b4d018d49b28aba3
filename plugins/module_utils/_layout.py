# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE module_utils: where a backup's (and a restore's) files are. Not a public API.

The one owner of the storage layout: directory names, file names, the archive format version,
resolving a directory from storage/cluster/name, claiming a backup directory, and writing a file
atomically.  Every other file asks here; nothing else spells a file name.

A backup storage location root is laid out as Velero lays out a bucket prefix
(``pkg/persistence/object_store_layout.go``)::

    <storage>/<cluster>/backups/<name>/velero-backup.json              the Backup object (_record)
                                       <name>.tar.gz                    the archive (_export)
                                       <name>-resource-list.json.gz     {"v1/Pod": ["ns/name"]}
                                       <name>-logs.gz                   gzipped JSON lines
                                       <name>-results.gz                {"errors": {...}, "warnings": {...}}
                                       <name>-hook-plan.json            the pods with hooks, before freezing
                                       <name>-hooks.jsonl               each hook as it ends (a killed run's trace)
                                       <name>-progress.json             the export's progress
                                       <name>-volumes/<ns>/<pod>/<volume>.tar.gz   volume capture
                                       <name>-volumes.json.gz           its index
                                       <name>-thaw-state.jsonl          pods marked thawed by the controller
                                       <name>-watchdog.json             what the watchdog did
    <storage>/<cluster>/restores/<restore-name>/velero-restore.json    the Restore object (_restore_record)
                                                restore-<name>-logs.gz   gzipped JSON lines
                                                restore-<name>-results.gz
                                                restore-<name>-resource-list.json.gz  {"v1/Pod": ["ns/name(created)"]}

Without a cluster the root is ``<storage>/`` itself.  The names Velero uses for the top level of a
location (backups, restores, metadata, plugins, restic, kopia) are refused as cluster names, so the
two forms cannot be confused.  Default storage: ``$XDG_DATA_HOME/kubehooks/storage``
(``~/.local/share/kubehooks/storage`` when XDG_DATA_HOME is unset or not absolute).  Directories are
created 0700 and every file 0600: archives hold Secrets.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import stat
import tempfile

from ansible_collections.kubehooks.backup.plugins.module_utils._errors import KubehooksError, show_value

# Velero's archive format version (metadata/version in the archive, status.formatVersion).
FORMAT_VERSION = "1.1.0"
RECORD_FILE = "velero-backup.json"
RESTORE_RECORD_FILE = "velero-restore.json"
BACKUPS_DIR = "backups"
RESTORES_DIR = "restores"
RESERVED_ROOT_NAMES = (BACKUPS_DIR, RESTORES_DIR, "metadata", "plugins", "restic", "kopia")

# A Kubernetes object name (IsDNS1123Subdomain): dot-separated labels of lowercase letters, digits
# and '-', each starting and ending with a letter or digit (``a.-b`` and ``a..b`` are refused).
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
DNS1123_SUBDOMAIN_MAX = 253
# The longest file name a file system takes (ext4, xfs, btrfs, tmpfs: 255 bytes).
FILE_NAME_MAX_BYTES = 255
# What a file's temporary name adds to it while it is written: atomic_write's ``.<file>.`` plus
# mkstemp's 8 random characters (10); the export's ``<file>.partial`` adds 8.
TEMP_NAME_OVERHEAD = 10
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

def max_backup_name_length():
    """The longest backup name for which every file name of FILE_NAMES, while written under its
    temporary name too, stays within FILE_NAME_MAX_BYTES (names are ASCII: characters are bytes)."""
    longest = max(len(pattern.format(name="")) for pattern in FILE_NAMES.values())
    return min(DNS1123_SUBDOMAIN_MAX, FILE_NAME_MAX_BYTES - longest - TEMP_NAME_OVERHEAD)


def check_backup_name(name, what="backup"):
    """A backup (or restore) name is a Kubernetes object name (DNS-1123 subdomain); KubehooksError if not.

    A backup name must also be short enough for the layout's file names (``max_backup_name_length``),
    so that a run refuses it before anything is frozen instead of failing at its first long file name.
    """
    limit = max_backup_name_length() if what == "backup" else DNS1123_SUBDOMAIN_MAX
    rule = ("use lowercase letters, digits, '-' and '.', in dot-separated parts that start and end with a "
            "letter or digit (a DNS-1123 subdomain), at most %d characters" % limit)
    if not isinstance(name, str):
        raise KubehooksError("invalid %s name %s: it must be a string; %s" % (what, show_value(name), rule))
    if not _DNS1123_SUBDOMAIN.match(name):
        raise KubehooksError("invalid %s name %s: %s" % (what, show_value(name), rule))
    if len(name) > limit:
        why = ""
        if what == "backup" and limit < DNS1123_SUBDOMAIN_MAX:
            longest = max(FILE_NAMES.values(), key=lambda pattern: len(pattern.format(name="")))
            why = (": its longest file name, %s, written under a temporary name, must fit the file system's "
                   "%d-byte limit" % (longest.format(name="<name>"), FILE_NAME_MAX_BYTES))
        raise KubehooksError("invalid %s name %s (%d characters): at most %d characters are allowed%s"
                             % (what, show_value(name[:48] + "..."), len(name), limit, why))
    return name


def check_cluster_name(cluster):
    """A cluster name is one directory name; KubehooksError when it is not usable."""
    if not isinstance(cluster, str) or len(cluster) > 253 or not CLUSTER_NAME.match(cluster):
        raise KubehooksError(
            "invalid cluster name %r: use letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(cluster_slug() turns any text into such a name)" % (cluster,))
    if cluster.lower() in RESERVED_ROOT_NAMES:
        raise KubehooksError("invalid cluster name %r: it is reserved by the storage layout (%s)"
                             % (cluster, ", ".join(RESERVED_ROOT_NAMES)))
    return cluster


def cluster_slug(text):
    """Turn any text (an inventory hostname, an API URL) into a valid cluster name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text or "")).strip("._-") or "cluster"
    slug = slug[:253]
    if slug.lower() in RESERVED_ROOT_NAMES:
        slug = "cluster_" + slug
    return slug


def cluster_from_host(host):
    """A cluster directory name from an API server URL: ``https://10.0.0.1:6443`` -> ``10.0.0.1_6443``."""
    text = str(host or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return cluster_slug(text.rstrip("/"))


# --------------------------------------------------------------------------------------------
# Directories
# --------------------------------------------------------------------------------------------

def default_storage_dir(environ=None, home=None):
    """``$XDG_DATA_HOME/kubehooks/storage``, else ``~/.local/share/kubehooks/storage``."""
    environ = os.environ if environ is None else environ
    data_home = environ.get("XDG_DATA_HOME") or ""
    if not os.path.isabs(data_home):
        data_home = os.path.join(home or os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "kubehooks", "storage")


def location_root(storage, cluster=None):
    """The backup storage location root: ``<storage>/<cluster>`` or ``<storage>``."""
    if cluster is None:
        return storage
    return os.path.join(storage, check_cluster_name(cluster))


def backups_root(storage, cluster=None):
    """``<storage>/[<cluster>/]backups``."""
    return os.path.join(location_root(storage, cluster), BACKUPS_DIR)


def backup_dir(storage, name, cluster=None):
    """``<storage>/[<cluster>/]backups/<name>``."""
    return os.path.join(backups_root(storage, cluster), check_backup_name(name))


def restores_root(storage, cluster=None):
    """``<storage>/[<cluster>/]restores``."""
    return os.path.join(location_root(storage, cluster), RESTORES_DIR)


def restore_dir(storage, cluster, restore_name):
    """``<storage>/[<cluster>/]restores/<restore-name>``."""
    return os.path.join(restores_root(storage, cluster), check_backup_name(restore_name, "restore"))


def location_of_backup_dir(bdir):
    """The location root of a backup directory ``<root>/backups/<name>``; else the directory's parent."""
    parent = os.path.dirname(os.path.abspath(bdir))
    if os.path.basename(parent) == BACKUPS_DIR:
        return os.path.dirname(parent)
    return parent


def resolve_backup_dir(name, backup_dir_param=None, storage_dir=None, cluster=None, api_host=None):
    """(backup directory, cluster name or None) for a module's location options.

    ``backup_dir_param`` is used as it is; otherwise ``<storage_dir>/[<cluster>/]backups/<name>``, where
    the cluster defaults to the name derived from ``api_host`` and the storage to
    :func:`default_storage_dir`.  The name is checked either way.
    """
    check_backup_name(name)
    if backup_dir_param:
        return backup_dir_param, None
    if not cluster and api_host:
        cluster = cluster_from_host(api_host)
    storage = storage_dir or default_storage_dir()
    return backup_dir(storage, name, cluster or None), cluster or None


def claim_backup_dir(bdir, name, adopt_unrecorded=False, what="backup"):
    """Create and claim the backup directory ``bdir`` (0700, parents 0700); returns it.

    A backup name is used once: an existing directory is a KubehooksError, except with
    ``adopt_unrecorded`` when it holds no record yet (a run that failed before its record was
    written, or an export run on its own).  ``what="restore"`` claims a restore directory the same
    way (a restore name is used once too).
    """
    parent = os.path.dirname(os.path.abspath(bdir))
    try:
        try:
            os.mkdir(bdir, 0o700)
        except FileNotFoundError:
            os.makedirs(parent, 0o700, exist_ok=True)
            os.mkdir(bdir, 0o700)
    except FileExistsError:
        if not adopt_unrecorded or not os.path.isdir(bdir) or os.path.exists(record_path(bdir)):
            raise KubehooksError("%s %s already exists in %s: choose another name" % (what, name, parent))
    except OSError as exc:
        raise KubehooksError("cannot create the %s directory %s: %s" % (what, bdir, exc.strerror or exc))
    return bdir


def ensure_dir(path):
    """Create ``path`` and each missing parent with mode 0700 (``os.makedirs`` would give the
    parents the umask's mode); OSError when it cannot be.  Concurrent creation is fine."""
    if os.path.isdir(path):
        return path
    parent = os.path.dirname(path)
    if parent and parent != path:
        ensure_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    return path


def subdirectories(base):
    """``(name, path)`` of each directory in ``base``, by name; none when ``base`` cannot be read."""
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    return [(name, os.path.join(base, name)) for name in names if os.path.isdir(os.path.join(base, name))]


def list_location_roots(storage, cluster=None):
    """(cluster name or None, location root) of every root in ``storage`` that has backups."""
    if cluster is not None:
        return [(cluster, location_root(storage, cluster))]
    roots = [(None, storage)]
    try:
        children = sorted(os.listdir(storage))
    except OSError:
        return roots
    for child in children:
        if child.lower() in RESERVED_ROOT_NAMES or not CLUSTER_NAME.match(child):
            continue
        if os.path.isdir(os.path.join(storage, child, BACKUPS_DIR)):
            roots.append((child, os.path.join(storage, child)))
    return roots


# --------------------------------------------------------------------------------------------
# Files of a backup directory
# --------------------------------------------------------------------------------------------

# The files of a backup directory by role: ``{name}`` is the backup name.
FILE_NAMES = {
    "record": RECORD_FILE,
    "archive": "{name}.tar.gz",
    "logs": "{name}-logs.gz",
    "resource_list": "{name}-resource-list.json.gz",
    "results": "{name}-results.gz",
    "hook_plan": "{name}-hook-plan.json",
    "hook_log": "{name}-hooks.jsonl",
    "progress": "{name}-progress.json",
    "volumes": "{name}-volumes",
    "volumes_index": "{name}-volumes.json.gz",
    # Velero's files about CSI snapshots (pkg/persistence/object_store.go), written by backup_capture
    "csi_volumesnapshots": "{name}-csi-volumesnapshots.json.gz",
    "csi_volumesnapshotcontents": "{name}-csi-volumesnapshotcontents.json.gz",
    "csi_volumesnapshotclasses": "{name}-csi-volumesnapshotclasses.json.gz",
    "volumeinfo": "{name}-volumeinfo.json.gz",
    "thaw_state": "{name}-thaw-state.jsonl",
    "watchdog": "{name}-watchdog.json",
}
# What the modules return as ``files`` (the later features' files are added as they land).
RETURNED_FILES = ("record", "archive", "logs", "resource_list", "results", "hook_plan", "hook_log", "progress",
                  "volumes_index", "thaw_state", "watchdog")


def backup_file(bdir, name, role):
    """The path of the file that plays ``role`` (a key of FILE_NAMES) in backup ``name``'s directory."""
    return os.path.join(bdir, FILE_NAMES[role].format(name=name))


def _path_of(role, doc):
    def path(bdir, name):
        return backup_file(bdir, name, role)
    path.__doc__ = doc
    return path


archive_path = _path_of("archive", "``<name>.tar.gz``: the resources in Velero's archive layout.")
log_path = _path_of("logs", "``<name>-logs.gz``: gzipped JSON lines, Velero's backup log.")
resource_list_path = _path_of("resource_list", "``<name>-resource-list.json.gz``: Velero's resource list.")
results_path = _path_of("results", "``<name>-results.gz``: the error and warning messages.")
hook_plan_path = _path_of("hook_plan", "``<name>-hook-plan.json``: the pods with hooks, saved before freezing.")
hook_log_path = _path_of("hook_log", "``<name>-hooks.jsonl``: each hook as it ends (what a killed run did).")
progress_path = _path_of("progress", "``<name>-progress.json``: the export's progress.")
volumes_dir = _path_of("volumes", "``<name>-volumes``: the captured volumes, ``<ns>/<pod>/<volume>.tar.gz``.")
volumes_index = _path_of("volumes_index", "``<name>-volumes.json.gz``: the index of the captured volumes.")
thaw_state = _path_of("thaw_state", "``<name>-thaw-state.jsonl``: pods the controller marked thawed.")
watchdog_record = _path_of("watchdog", "``<name>-watchdog.json``: what the watchdog did.")


def record_path(bdir):
    """``velero-backup.json``: the Backup object."""
    return os.path.join(bdir, RECORD_FILE)


def volume_archive(bdir, name, namespace, pod, volume):
    """``<name>-volumes/<ns>/<pod>/<volume>.tar.gz``: one captured volume."""
    return os.path.join(volumes_dir(bdir, name), namespace, pod, "%s.tar.gz" % volume)


def files_of(bdir, name):
    """The backup's files by role, as the modules return them (``files``)."""
    return dict((role, backup_file(bdir, name, role)) for role in RETURNED_FILES)


def untrusted_file_problem(path, uid=None):
    """Why a file this collection wrote cannot be trusted as input (None when it can).

    A saved hook plan is a list of commands that the thaw runs in pods: it must be a regular file (not
    a symlink) owned by the running user, not writable by its group or others, in a directory that is
    neither (else another local user could have put commands of their own in it).
    """
    uid = os.geteuid() if uid is None else uid
    for what, target in (("file", path), ("directory", os.path.dirname(os.path.abspath(path)))):
        try:
            info = os.lstat(target)
        except OSError as exc:
            return "cannot inspect the %s %s: %s" % (what, target, exc.strerror or exc)
        if what == "file" and not stat.S_ISREG(info.st_mode):
            return "%s is not a regular file (a symlink?)" % target
        if info.st_uid != uid:
            return "the %s %s is owned by uid %d, not by the running user (uid %d)" % (what, target, info.st_uid, uid)
        if info.st_mode & 0o022:
            return "the %s %s is writable by its group or others (mode %04o)" % (
                what, target, stat.S_IMODE(info.st_mode))
    return None


# --------------------------------------------------------------------------------------------
# Files of a restore directory
# --------------------------------------------------------------------------------------------

# Velero names a restore's files as a backup's, with ``restore-`` before the name
# (object_store_layout.go getRestoreLogKey, getRestoreResultsKey, getRestoreResourceListKey).
RESTORE_FILE_PREFIX = "restore-"
RESTORE_ROLES = ("record", "logs", "results", "resource_list")


def restore_stem(name):
    """``restore-<name>``: the name a restore's files carry where a backup's carry ``<name>``."""
    return RESTORE_FILE_PREFIX + name


def restore_file(rdir, name, role):
    """The path of the file that plays ``role`` (one of RESTORE_ROLES) in restore ``name``'s directory."""
    if role == "record":
        return os.path.join(rdir, RESTORE_RECORD_FILE)
    if role not in RESTORE_ROLES:
        raise KeyError(role)
    return backup_file(rdir, restore_stem(name), role)


def restore_files_of(rdir, name):
    """The restore's files by role, as the modules return them (``files``)."""
    return dict((role, restore_file(rdir, name, role)) for role in RESTORE_ROLES)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def atomic_write(path, data, what=None, sync=True):
    """Write bytes to ``path`` through a temporary file in the same directory and a rename (0600).

    A reader never sees half a file.  ``sync`` fsyncs before the rename (off for files rewritten
    often, such as the progress file).  KubehooksError ``cannot write <what> <path>: <reason>``.
    """
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise KubehooksError("cannot write %s%s: %s" % (what + " " if what else "", path, exc.strerror or exc))
        raise
    return path
