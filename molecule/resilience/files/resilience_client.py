"""Client side of the resilience tests (molecule/resilience), run on the client container.

Subcommands:
  make-image  write an OCI layout with random layers (real tar+gzip layers)
  load        pull an image in a loop with skopeo and probe its manifest,
              bounded in time and count, one JSON line per attempt
  walk        walk the registry through its API: catalog, tags, manifests,
              blobs; report every broken link
  status      one GET through the API: status and headers

Credentials come from the environment (RESILIENCE_CREDS="user:password"),
not the command line. Only the Python standard library and skopeo are used.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def creds() -> str:
    value = os.environ.get("RESILIENCE_CREDS", "")
    if ":" not in value:
        sys.exit("RESILIENCE_CREDS must be user:password")
    return value


# --- make-image ----------------------------------------------------------------------------------


def _write_blob(out: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


class _Hashing(io.RawIOBase):
    """A file that hashes and counts what is written to it."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.f.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _write_layer(out: str, member: str, size: int) -> tuple[dict, str]:
    """A gzip'ed tar layer with one file of `size` random bytes, streamed to disk: (descriptor, diff ID)."""
    chunk = 4 << 20
    temporary = os.path.join(out, "layer.tmp")
    with open(temporary, "wb") as raw_file:
        compressed = _Hashing(raw_file)
        # Level 0: random data does not compress, and it is fast.
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=0, mtime=0) as gz:
            uncompressed = _Hashing(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|") as tar:
                info = tarfile.TarInfo(member)
                info.size, info.mtime = size, 0
                reader = io.BufferedReader(_RandomReader(size), buffer_size=chunk)
                tar.addfile(info, reader)
    digest = compressed.sha.hexdigest()
    os.rename(temporary, os.path.join(out, "blobs", "sha256", digest))
    descriptor = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest, "size": compressed.size}
    return descriptor, "sha256:" + uncompressed.sha.hexdigest()


class _RandomReader(io.RawIOBase):
    """`size` random bytes, read in pieces."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = os.urandom(count)
        self.left -= count
        return count


def _write_manifest(out: str, name: str, architecture: str, layers: int, layer_bytes: int) -> tuple[dict, list[str]]:
    descriptors, diff_ids = [], []
    for index in range(layers):
        descriptor, diff_id = _write_layer(out, f"data/{name}-{architecture}-{index}.bin", layer_bytes)
        descriptors.append(descriptor)
        diff_ids.append(diff_id)
    config = json.dumps(
        {"architecture": architecture, "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}},
        sort_keys=True,
    ).encode()
    config_desc = _write_blob(out, config)
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": descriptors,
        },
        sort_keys=True,
    ).encode()
    manifest_desc = _write_blob(out, manifest)
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    return manifest_desc, [config_desc["digest"]] + [x["digest"] for x in descriptors]


def make_image(args: argparse.Namespace) -> None:
    """An OCI layout with one image (one architecture) or an image index (several)."""
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(os.path.join(args.out, "blobs", "sha256"))
    architectures = args.platforms.split(",")
    manifests, blobs = [], []
    for architecture in architectures:
        manifest_desc, manifest_blobs = _write_manifest(args.out, args.name, architecture, args.layers, args.layer_bytes)
        manifest_desc["platform"] = {"architecture": architecture, "os": "linux"}
        manifests.append(manifest_desc)
        blobs += manifest_blobs
    if len(manifests) == 1:
        top = manifests[0]
        del top["platform"]
    else:
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests},
            sort_keys=True,
        ).encode()
        top = _write_blob(args.out, index)
        top["mediaType"] = "application/vnd.oci.image.index.v1+json"
    top["annotations"] = {"org.opencontainers.image.ref.name": args.name}
    with open(os.path.join(args.out, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)
    with open(os.path.join(args.out, "oci-layout"), "w", encoding="utf-8") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(json.dumps({"manifest": top["digest"], "blobs": blobs, "manifests": [m["digest"] for m in manifests]}))


# --- HTTP ----------------------------------------------------------------------------------------


class Api:
    """The registry's API over HTTPS, one connection per request, authenticated as docker does it.

    A request first goes with basic auth (or none without credentials); a
    401 with a Bearer challenge (token authentication) gets a token from the
    challenge's realm, for its service and scope, which the request is sent
    again with; tokens are kept per scope until the registry refuses one.
    """

    def __init__(self, registry: str, ca: str, timeout: float = 10.0, anonymous: bool = False) -> None:
        self.base = f"https://{registry}"
        self.context = ssl.create_default_context(cafile=ca)
        self.basic = None if anonymous else "Basic " + base64.b64encode(creds().encode()).decode()
        self.timeout = timeout
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()

    def _send(self, url: str, method: str, headers: dict) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(url, method=method, headers={k: v for k, v in headers.items() if v})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=self.timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    @staticmethod
    def _scope_key(path: str) -> str:
        """What a request to `path` needs a token for: its repository, or the catalog."""
        name = path.split("?")[0][len("/v2/"):]
        if name.startswith("_catalog"):
            return "catalog"
        for marker in ("/manifests/", "/blobs/", "/tags/"):
            if marker in name:
                return name.split(marker)[0]
        return ""

    def _token(self, challenge: str) -> tuple[int, str]:
        """Status of the token request for a Bearer challenge, and the header it gives."""
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = urllib.parse.urlencode([(k, fields[k]) for k in ("service", "scope") if k in fields])
        status, _headers, body = self._send(f"{fields.get('realm', '')}?{query}", "GET", {"Authorization": self.basic})
        return status, ("Bearer " + json.loads(body)["token"]) if status == 200 else ""

    def request(self, path: str, method: str = "GET", accept: str | None = None) -> tuple[int, dict, bytes]:
        key = self._scope_key(path)
        with self.lock:
            authorization = self.tokens.get(key, self.basic)
        status, headers, body = self._send(self.base + path, method, {"Authorization": authorization, "Accept": accept})
        challenge = {k.lower(): v for k, v in headers.items()}.get("www-authenticate", "")
        if status != 401 or not challenge.startswith("Bearer "):
            return status, headers, body
        token_status, authorization = self._token(challenge)
        if token_status != 200:
            return token_status, headers, body
        with self.lock:
            self.tokens[key] = authorization
        return self._send(self.base + path, method, {"Authorization": authorization, "Accept": accept})


def status(args: argparse.Namespace) -> None:
    """One GET, as the client tool authenticates (or with the token given): its status and headers (lowercase names) as JSON."""
    api = Api(args.registry, args.ca, timeout=20, anonymous=args.anonymous or bool(args.bearer))
    if args.bearer:
        code, headers, _body = api._send(api.base + args.path, "GET", {"Authorization": "Bearer " + args.bearer, "Accept": args.accept})
    else:
        code, headers, _body = api.request(args.path, accept=args.accept)
    print(json.dumps({"status": code, "headers": {k.lower(): v for k, v in headers.items()}}))


# --- load ----------------------------------------------------------------------------------------


def load(args: argparse.Namespace) -> None:
    """Pull (skopeo, full transfer into a fresh directory) and probe (manifest GET) until told to stop.

    Bounded: at most --max-pulls pulls and --max-seconds seconds in all, each
    pull at most --pull-timeout seconds, one pull started every --pull-interval
    seconds at most; stops early when --stop-file exists.
    """
    deadline = time.time() + args.max_seconds
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1, encoding="utf-8")  # pylint: disable=consider-using-with
    registry, _slash, rest = args.ref.partition("/")
    repository, _at, digest = rest.partition("@")
    api = Api(registry, args.ca, timeout=args.probe_timeout)

    def record(**fields) -> None:
        with lock:
            log.write(json.dumps(fields) + "\n")

    def stopped() -> bool:
        return time.time() >= deadline or os.path.exists(args.stop_file)

    def puller() -> None:
        work = args.log + ".pull"
        for number in range(args.max_pulls):
            if stopped():
                return
            shutil.rmtree(work, ignore_errors=True)
            start = time.time()
            try:
                result = subprocess.run(
                    ["skopeo", "copy", "--quiet", "--retry-times", str(args.pull_retries), "--src-creds", creds(), f"docker://{args.ref}", f"dir:{work}"],
                    capture_output=True,
                    text=True,
                    timeout=args.pull_timeout,
                    check=False,
                )
                ok, detail = result.returncode == 0, (result.stderr or result.stdout).strip()[-400:]
            except subprocess.TimeoutExpired:
                ok, detail = False, f"timed out after {args.pull_timeout}s"
            record(kind="pull", n=number, start=start, end=time.time(), ok=ok, detail=detail)
            time.sleep(max(0.0, args.pull_interval - (time.time() - start)))
        shutil.rmtree(work, ignore_errors=True)

    def prober() -> None:
        number = 0
        while not stopped():
            start = time.time()
            try:
                status, _headers, body = api.request(f"/v2/{repository}/manifests/{digest}", accept=MANIFEST_TYPES)
                ok = status == 200 and "sha256:" + hashlib.sha256(body).hexdigest() == digest
                detail = "" if ok else f"HTTP {status}: {body[:200]!r}"
            except Exception as error:  # noqa: BLE001 - every failure is a result here
                ok, detail = False, f"{type(error).__name__}: {error}"
            record(kind="probe", n=number, start=start, end=time.time(), ok=ok, detail=detail)
            number += 1
            time.sleep(max(0.0, args.probe_interval - (time.time() - start)))

    threads = [threading.Thread(target=puller), threading.Thread(target=prober)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    with open(args.log + ".done", "w", encoding="utf-8") as f:
        f.write("done\n")


# --- walk ----------------------------------------------------------------------------------------


def walk(args: argparse.Namespace) -> None:
    """Every repository, tag, manifest (indexes followed) and blob the API lists must be there and match its digest."""
    api = Api(args.registry, args.ca, timeout=60)
    errors, counts = [], {"repositories": 0, "tags": 0, "manifests": 0, "blobs": 0}
    status, _headers, body = api.request("/v2/_catalog?n=1000")
    if status != 200:
        print(json.dumps({"counts": counts, "errors": [f"catalog: HTTP {status}"]}))
        return
    seen_blobs = set()

    def check_blob(repository: str, blob: dict) -> None:
        key = (repository, blob["digest"])
        if key in seen_blobs:
            return
        seen_blobs.add(key)
        status, _headers, data = api.request(f"/v2/{repository}/blobs/{blob['digest']}")
        counts["blobs"] += 1
        if status != 200:
            errors.append(f"{repository}: blob {blob['digest']} HTTP {status}")
        elif "sha256:" + hashlib.sha256(data).hexdigest() != blob["digest"] or len(data) != blob["size"]:
            errors.append(f"{repository}: blob {blob['digest']} content does not match its digest/size")

    def check_manifest(repository: str, reference: str, expected: str | None = None) -> None:
        status, headers, manifest = api.request(f"/v2/{repository}/manifests/{reference}", accept=MANIFEST_TYPES)
        if status != 200:
            errors.append(f"{repository}:{reference}: manifest HTTP {status}")
            return
        counts["manifests"] += 1
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if headers.get("Docker-Content-Digest") not in (None, digest) or expected not in (None, digest):
            errors.append(f"{repository}:{reference}: manifest digest {digest} != {headers.get('Docker-Content-Digest')} / {expected}")
        document = json.loads(manifest)
        for child in document.get("manifests", []):
            check_manifest(repository, child["digest"], child["digest"])
        for blob in ([document["config"]] if "config" in document else []) + document.get("layers", []):
            check_blob(repository, blob)

    for repository in json.loads(body)["repositories"] or []:
        counts["repositories"] += 1
        status, _headers, body = api.request(f"/v2/{repository}/tags/list?n=1000")
        if status != 200:
            errors.append(f"{repository}: tags list HTTP {status}")
            continue
        for tag in json.loads(body).get("tags") or []:
            counts["tags"] += 1
            check_manifest(repository, tag)
    print(json.dumps({"counts": counts, "errors": errors}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-image")
    p.add_argument("out")
    p.add_argument("--name", required=True)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--layer-bytes", type=int, default=1 << 20)
    p.add_argument("--platforms", default="amd64", help="architectures, comma separated: several make an image index")
    p.set_defaults(func=make_image)

    p = sub.add_parser("load")
    p.add_argument("--ref", required=True, help="registry/repository@sha256:...")
    p.add_argument("--ca", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--max-pulls", type=int, default=300)
    p.add_argument("--pull-timeout", type=float, default=60)
    p.add_argument("--pull-retries", type=int, default=0, help="skopeo's --retry-times: a request that failed is tried again, as docker does")
    p.add_argument("--pull-interval", type=float, default=0.5, help="least time from one pull's start to the next")
    p.add_argument("--probe-interval", type=float, default=0.25)
    p.add_argument("--probe-timeout", type=float, default=10)
    p.set_defaults(func=load)

    p = sub.add_parser("status")
    p.add_argument("path")
    p.add_argument("--registry", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--accept")
    p.add_argument("--anonymous", action="store_true", help="no credentials (RESILIENCE_CREDS unused)")
    p.add_argument("--bearer", help="send this token, as it is, and no other")
    p.set_defaults(func=status)

    p = sub.add_parser("walk")
    p.add_argument("--registry", required=True)
    p.add_argument("--ca", required=True)
    p.set_defaults(func=walk)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
