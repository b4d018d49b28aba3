"""A tar archive with every member type a volume holds, for the tests of _tar and _capture."""
import io
import random
import tarfile


def tar_archive(fmt, long_names=True):
    """A tar archive with every member type a volume holds, in ``fmt``; (bytes, member count)."""
    out = io.BytesIO()
    rnd = random.Random(7)
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        def add(info, data=None):
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        add(root)
        for size in (0, 1, 511, 512, 513, 70000):
            add(tarfile.TarInfo("./f%d" % size), bytes(rnd.getrandbits(8) for _i in range(size)))
        sub = tarfile.TarInfo("./sub")
        sub.type = tarfile.DIRTYPE
        add(sub)
        if long_names:
            add(tarfile.TarInfo("./sub/" + "n" * 150 + "-\u00e9t\u00e9"), b"long name")
            link = tarfile.TarInfo("./sub/link-" + "l" * 120)
            link.type = tarfile.SYMTYPE
            link.linkname = "../" + "t" * 140
            add(link)
        sym = tarfile.TarInfo("./sym")
        sym.type = tarfile.SYMTYPE
        sym.linkname = "f1"
        add(sym)
        hard = tarfile.TarInfo("./hard")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "./f1"
        add(hard)
        fifo = tarfile.TarInfo("./fifo")
        fifo.type = tarfile.FIFOTYPE
        add(fifo)
    data = out.getvalue()
    members = len(tarfile.open(fileobj=io.BytesIO(data)).getmembers())
    return data, members
