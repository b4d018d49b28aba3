"""Images without a registry: a debootstrap rootfs and a static catatonit, packed as single-layer OCI
archives in the cache (keyed by their inputs) and imported with ctr into the node's containerd."""
import hashlib
import io
import json
import shutil
import tarfile
import time

from .ui import run, say, step

NODE_PACKAGES = ["nginx-light", "util-linux", "coreutils", "ca-certificates"]
CATATONIT = "/usr/bin/catatonit"


def _key(*parts):
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def node_archive(cfg):
    return cfg.images_dir / f"node-{cfg.debian_suite}-{_key(cfg.node_image, cfg.debian_suite, NODE_PACKAGES)}.tar"


def pause_archive(cfg):
    return cfg.images_dir / f"pause-{_key(cfg.pause_image, CATATONIT)}.tar"


def _blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime = len(data), 0
    out.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _file_blob(out, path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    size = path.stat().st_size
    out.add(path, arcname=f"blobs/sha256/{h.hexdigest()}", recursive=False)
    return {"digest": f"sha256:{h.hexdigest()}", "size": size}


def pack_oci(layer_tar, name, image_config, dest):
    """Write an OCI image layout archive with one uncompressed layer; named for ctr import."""
    tmp = dest.with_suffix(".partial")
    with tarfile.open(tmp, "w") as out:
        layer = _file_blob(out, layer_tar)
        config = dict(image_config, architecture="amd64", os="linux",
                      rootfs={"type": "layers", "diff_ids": [layer["digest"]]})
        config_desc = _blob(out, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}
        manifest_desc = _blob(out, json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name}}]}
        for fname, data in (("oci-layout", {"imageLayoutVersion": "1.0.0"}), ("index.json", index)):
            raw = json.dumps(data).encode()
            info = tarfile.TarInfo(fname)
            info.size, info.mtime = len(raw), 0
            out.addfile(info, io.BytesIO(raw))
    tmp.rename(dest)


def _layer_from_dir(rootfs, layer_tar):
    with tarfile.open(layer_tar, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)


def build_node_image(cfg):
    dest = node_archive(cfg)
    if dest.exists():
        say(f"==> node image {cfg.node_image}: cached in {dest}")
        return dest
    cfg.images_dir.mkdir(parents=True, exist_ok=True)
    work = cfg.images_dir / "work-node"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    log = cfg.cache_dir / "logs" / "debootstrap.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with step(f"debootstrap {cfg.debian_suite} minbase + {','.join(NODE_PACKAGES)} (log: {log})",
              heartbeat=20):
        run(["debootstrap", "--variant=minbase", f"--include={','.join(NODE_PACKAGES)}",
             cfg.debian_suite, rootfs, cfg.debian_mirror], log=log)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / leftover).glob("*"):
                if p.is_file():
                    p.unlink()
    with step(f"packing {cfg.node_image} as an OCI archive", heartbeat=20):
        _layer_from_dir(rootfs, work / "layer.tar")
        pack_oci(work / "layer.tar", cfg.node_image, {"config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["nginx", "-g", "daemon off;"], "WorkingDir": "/"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, dest)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def build_pause_image(cfg):
    dest = pause_archive(cfg)
    if dest.exists():
        return dest
    cfg.images_dir.mkdir(parents=True, exist_ok=True)
    layer = cfg.images_dir / "pause-layer.tar"
    with tarfile.open(layer, "w") as tar:
        info = tar.gettarinfo(CATATONIT, arcname="catatonit")
        info.uid = info.gid = 0
        info.mode, info.mtime = 0o755, 0
        with open(CATATONIT, "rb") as f:
            tar.addfile(info, f)
    pack_oci(layer, cfg.pause_image, {"config": {"Entrypoint": ["/catatonit", "-P"]}}, dest)
    layer.unlink()
    return dest


def ctr(cfg, *args, check=True):
    return run(["ctr", "-a", cfg.containerd_socket, "-n", "k8s.io", *args], check=check)


def ensure_imported(cfg):
    """Build (cached) and import both images into the node's containerd unless already there."""
    present = set(ctr(cfg, "images", "ls", "-q").stdout.split())
    for name, builder in ((cfg.pause_image, build_pause_image), (cfg.node_image, build_node_image)):
        if name in present:
            say(f"==> image {name}: present in containerd")
            continue
        archive = builder(cfg)
        with step(f"importing {name} into the node's containerd"):
            ctr(cfg, "images", "import", archive)
