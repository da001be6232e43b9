#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/seeds/<target>/.

Seeds are small valid inputs that put each fuzzer past the first checks:
a Clusterfile with hosts and config documents, a Kubefile, templates, tar
layers (plain, gzip), an oci-archive and a docker-archive, and Plan/Push
streams encoded as length-delimited protobuf. Deterministic: re-running it
rewrites the same bytes. Run from anywhere: packaging/fuzz/seeds.py
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tar_of(members):
    """members: (name, bytes | None for a dir, dict of TarInfo attributes)."""
    buf = io.BytesIO()
    tarfile.RECORDSIZE = 512  # no padding to 10 KiB: seeds stay small
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, attrs in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = 0o755 if data is None else 0o644
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            for k, v in attrs.items():
                setattr(info, k, v)
            t.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


# --- protobuf, just enough for the transfer messages ---
def varint(n):
    if n < 0:  # int64: two's complement, ten bytes
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(f for f in fields if f)


def delimited(*msgs):
    return b"".join(varint(len(m)) + m for m in msgs)


CLUSTERFILE = """apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata:
  name: default
spec:
  hosts:
  - ips: [10.0.0.2:22, 10.0.0.3-10.0.0.5]
    roles: [master, amd64]
    env: [A=b]
  - ips: ["[fd00::1]:2222"]
    roles: [node, registry]
    ssh: {user: root, port: 22}
  image: [labring/kubernetes:v1.30.0]
  ssh: {passwd: x, pk: /root/.ssh/id_rsa}
  env: [registryDomain=sealos.hub]
---
apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata:
  name: cfg
spec:
  path: etc/kubeadm.yml
  match: labring/kubernetes:v1.30.0
  strategy: merge
  data: |
    a: 1
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  podSubnet: 100.64.0.0/10
"""

CONFIG_DOC = """apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata:
  name: c
spec:
  path: charts/values.yaml
  strategy: merge
  data: |
    image:
      tag: v2
    list: [1, 2]
---
apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata:
  name: d
spec:
  path: etc/x.conf
  strategy: override
  data: "hello"
\0image:
  repo: r
  tag: v1
---
other: doc
"""

KUBEFILE = """# syntax
ARG BASE=labring/kubernetes
FROM ${BASE}:v1.30.0 AS base
ARG VERSION
ENV K=v PATH=/bin:$PATH
LABEL a="b c" \\
  d=e
COPY --chmod=0755 registry charts/ ./
ADD manifests /manifests
CMD ["kubectl apply -f manifests/$VERSION"]
ENTRYPOINT sh -c 'echo "$K"'
MAINTAINER me
"""

IGNORE = "# c\n*.log\n!keep.log\n**/tmp\nbuild/?a[b-c]*\n\0build/xab.log"

TEMPLATES = {
    "basic": "a={{ .HostIP }} {{ if eq .n \"3\" }}three{{ else }}no{{ end }}",
    "range": "{{ range $i, $v := split \",\" .list }}{{ $i }}={{ $v | upper }};{{ end }}",
    "values": "{{ with .Values.a }}{{ index .b 1 | quote }}{{ end }} {{ .Env.HostIP }}",
    "funcs": "{{ default \"x\" .nope }} {{ semverCompare \">=1.29\" .SEALOS_SYS_KUBE_VERSION }} "
    "{{ printf \"%s-%d\" \"a\" 3 }} {{ b64enc \"hi\" }} {{ trimPrefix \"v\" \"v1\" }}",
    "define": "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .HostIP }}{{- /* c */ -}}",
}


def oci_archive():
    layer = gz(tar_of([("etc", None, {}), ("etc/a", b"hello\n", {})]))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    def desc(media, data):
        return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "size": len(data)}
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
    }).encode()
    m = desc("application/vnd.oci.image.manifest.v1+json", manifest)
    m["annotations"] = {"org.opencontainers.image.ref.name": "fuzz/image:v1"}
    index = json.dumps({"schemaVersion": 2, "manifests": [m]}).encode()
    blobs = [("blobs/sha256/" + hashlib.sha256(b).hexdigest(), b, {})
             for b in (layer, config, manifest)]
    return tar_of([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', {}),
                   ("index.json", index, {}), ("blobs", None, {}),
                   ("blobs/sha256", None, {})] + blobs)


def docker_archive():
    layer = tar_of([("etc/a", b"hello\n", {})])
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    cname = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cname, "RepoTags": ["fuzz/image:v1"],
                            "Layers": ["l1/layer.tar"]}]).encode()
    return tar_of([("manifest.json", manifest, {}), (cname, config, {}),
                   ("l1", None, {}), ("l1/layer.tar", layer, {})])


def transfer():
    data = b"hello fuzz\n"
    h = hashlib.sha256(data).digest()
    header = msg(field(1, "t1"), field(2, "/opt/fuzz"), field(3, 1 << 20), field(4, 1),
                 field(5, "op1"), field(6, 3), field(7, "skip"))
    entries = msg(
        field(1, msg(field(1, "d"), field(2, 1), field(3, 0o755))),
        field(1, msg(field(1, "d/f"), field(2, 2), field(3, 0o644), field(6, len(data)),
                     field(7, h), field(9, 7))),
        field(1, msg(field(1, "l"), field(2, 3), field(8, "d/f"))),
    )
    put("transfer_plan", "plan", delimited(msg(field(1, header)), msg(field(2, entries))))
    # Far-future (i64::MAX) and far-past (i64::MIN, refused) mtimes.
    for name, mtime in (("mtime-max", (1 << 63) - 1), ("mtime-min", -(1 << 63))):
        one = msg(field(1, "t1"), field(2, "/opt/fuzz"), field(3, 1 << 20), field(5, "op1"),
                  field(6, 1))
        f = msg(field(1, msg(field(1, "f"), field(2, 2), field(3, 0o644), field(6, len(data)),
                             field(7, h), field(9, mtime))))
        put("transfer_plan", name, delimited(msg(field(1, one)), msg(field(2, f))))
    hop = msg(field(1, "127.0.0.1:7443"), field(2, "t1"), field(3, 1))
    relay = msg(field(1, 0), field(2, hop))
    whole = msg(field(1, h), field(2, len(data)), field(4, data), field(5, b"\x03"))
    part1 = msg(field(1, h), field(2, len(data)), field(4, data[:4]), field(6, len(data)))
    part2 = msg(field(1, h), field(2, len(data)), field(4, data[4:]), field(6, len(data)),
                field(7, 4))
    put("transfer_push", "whole", delimited(msg(field(1, "t1")), msg(field(3, relay)),
                                            msg(field(2, whole))))
    put("transfer_push", "parts", delimited(msg(field(2, part1)), msg(field(2, part2))))


def main():
    put("clusterfile", "cluster", CLUSTERFILE)
    put("config_doc", "merge", CONFIG_DOC)
    put("kubefile", "kubefile", KUBEFILE)
    put("kubefile", "ignore", IGNORE)
    for name, text in TEMPLATES.items():
        put("template", name, text)
    put("host_list", "mixed", "10.0.0.1-10.0.0.4, 10.0.1.1:2222,[fd00::2]:22,,192.168.0.9")
    put("host_list", "range", "10.0.0.250-10.0.1.3")
    layer = tar_of([
        ("etc", None, {}), ("etc/a", b"hello\n", {}),
        ("etc/link", b"", {"type": tarfile.SYMTYPE, "linkname": "a"}),
        ("etc/hard", b"", {"type": tarfile.LNKTYPE, "linkname": "etc/a"}),
        ("etc/.wh.gone", b"", {}), ("opt/.wh..wh..opq", b"", {}),
        ("x" * 120 + "/long-name-file", b"y", {}),
    ])
    put("layer_unpack", "plain", layer)
    put("layer_unpack", "gzip", gz(layer))
    put("archive_load", "oci", oci_archive())
    put("archive_load", "docker", docker_archive())
    transfer()


if __name__ == "__main__":
    main()
