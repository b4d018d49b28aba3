"""A volume's tree as the restore must reproduce it: what the volume-data tests and bench_restore_volumes.py compare."""
import hashlib
import os
import stat


def tree(root):
    """{relative path: (kind, sha256 or link target, uid, gid, mode)}, lost+found left out."""
    out = {}
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (base == root and d == "lost+found")]
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", None)
            else:
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                what = ("file", digest.hexdigest())
            out[os.path.relpath(path, root)] = what + (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return out
