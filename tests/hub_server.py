"""A loopback Hugging Face Hub that speaks the endpoints `HfApi` uses to publish a model.

Repo creation, README metadata validation, preupload (GGUF and safetensors are routed to LFS,
as the Hub's default .gitattributes does), the git-LFS batch API with a presigned PUT and a
verify call, and the NDJSON commit. Committed files are kept by repo so tests can read them.
Every API call must carry `Authorization: Bearer <token>`; the presigned PUT carries none, as
on the real Hub. `fail_commit` makes the commit answer 500 after the uploads succeeded.

Xet storage is not spoken here: point the client at it with HF_HUB_DISABLE_XET set, and
huggingface_hub falls back to plain LFS, which the Hub still accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")
LFS_MIN_BYTES = 10 * 1024 * 1024  # the Hub sends larger files to LFS whatever their name
_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Hub:
    token: str
    url: str = ""
    fail_commit: bool = False
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)  # by sha256
    requests: list[tuple[str, str]] = field(default_factory=list)
    bad_auth: list[str] = field(default_factory=list)  # paths called without the right token
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    routes = [
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("POST", rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", rf"/{_REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
        ("POST", rf"/{_REPO}\.git/info/lfs/objects/verify", "lfs_verify"),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_put"),
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?")[0]
            body = self._body()
            with hub.lock:
                hub.requests.append((method, path))
            for verb, pattern, name in routes:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    if name != "lfs_put" and self.headers.get("authorization") != (
                        f"Bearer {hub.token}"
                    ):
                        hub.bad_auth.append(path)
                        return self._send(401, {"error": "Invalid credentials in Authorization"})
                    with hub.lock:
                        return getattr(self, name)(body, **match.groupdict())
            self._send(404, {"error": f"no route {method} {path}"})

        def _body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                out = b""
                while size := int(self.rfile.readline().strip(), 16):
                    out += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return out
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def create_repo(self, body: bytes) -> None:
            spec = json.loads(body)
            repo_id = f"{spec['organization']}/{spec['name']}"
            url = f"{hub.url}/{repo_id}"
            if repo_id in hub.repos:
                return self._send(409, {"error": "You already created this model repo", "url": url})
            hub.repos[repo_id] = Repo(private=spec.get("visibility") == "private")
            self._send(200, {"url": url, "name": repo_id, "id": secrets.token_hex(12)})

        def validate_yaml(self, body: bytes) -> None:
            content = json.loads(body)["content"]
            front = re.match(r"^---\n(.*?)\n---\n", content, re.S)
            try:
                meta = yaml.safe_load(front.group(1)) if front else None
            except yaml.YAMLError as exc:
                return self._send(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
            if not isinstance(meta, dict):
                return self._send(400, {"errors": [{"message": "no YAML metadata block"}]})
            self._send(200, {"errors": [], "warnings": []})

        def preupload(self, body: bytes, repo: str, rev: str) -> None:
            if repo not in hub.repos:
                return self._send(404, {"error": "Repository not found"})
            files = []
            for f in json.loads(body)["files"]:
                lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] >= LFS_MIN_BYTES
                mode = "lfs" if lfs else "regular"
                files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False})
            self._send(200, {"files": files, "commitOid": _head(hub.repos[repo])})

        def lfs_batch(self, body: bytes, repo: str) -> None:
            objects = []
            for obj in json.loads(body)["objects"]:
                item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.lfs:  # no actions: the store already has it
                    signature = secrets.token_hex(8)
                    item["actions"] = {
                        "upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}?sig={signature}"},
                        "verify": {"href": f"{hub.url}/{repo}.git/info/lfs/objects/verify"},
                    }
                objects.append(item)
            self._send(200, {"transfer": "basic", "objects": objects})

        def lfs_put(self, body: bytes, oid: str) -> None:
            if hashlib.sha256(body).hexdigest() != oid:
                return self._send(400, {"error": "content does not match the oid"})
            hub.lfs[oid] = body
            self._send(200, {})

        def lfs_verify(self, body: bytes, repo: str) -> None:
            obj = json.loads(body)
            stored = hub.lfs.get(obj["oid"])
            ok = stored is not None and len(stored) == obj["size"]
            self._send(200 if ok else 404, {"ok": ok})

        def commit(self, body: bytes, repo: str, rev: str) -> None:
            if repo not in hub.repos:
                return self._send(404, {"error": "Repository not found"})
            if hub.fail_commit:
                return self._send(500, {"error": "Internal Error - We're working hard to fix this"})
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            if not lines or lines[0]["key"] != "header":
                return self._send(400, {"error": "the first line must be the commit header"})
            files: dict[str, bytes] = {}
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        return self._send(422, {"error": f"LFS object {value['oid']} missing"})
                    files[value["path"]] = hub.lfs[value["oid"]]
                else:
                    return self._send(400, {"error": f"unsupported operation {line['key']}"})
            target = hub.repos[repo]
            oid = secrets.token_hex(20)
            target.files.update(files)
            target.commits.append({"oid": oid, **lines[0]["value"], "files": sorted(files)})
            url = f"{hub.url}/{repo}/commit/{oid}"
            self._send(200, {"success": True, "commitOid": oid, "commitUrl": url})

    return Handler


def _head(repo: Repo) -> str:
    return repo.commits[-1]["oid"] if repo.commits else "0" * 40


@contextmanager
def serve_hub(token: str) -> Iterator[Hub]:
    """Run the loopback Hub on a free 127.0.0.1 port for the block; `hub.url` is its endpoint."""
    hub = Hub(token=token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
