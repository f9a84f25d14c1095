"""A small stand-in for the Hugging Face Hub API on 127.0.0.1, for push tests.

It answers the calls ``huggingface_hub`` makes to upload a dataset: repo
creation, README validation, branch creation, tree listing, pre-upload (Parquet
goes through LFS, the card inline), the LFS batch API, the LFS upload itself, and
the NDJSON commit. Files that arrive are kept per repo so a test can load them.
Modes inject faults: ``unauthorized`` (401 everywhere), ``forbidden`` (403 on create
and on the repo), ``readonly`` (the repo exists, commits get 403).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

TOKEN = "hf_testtoken_0123456789abcdef"


class FakeHub:
    """``with FakeHub() as hub:`` serves at ``hub.endpoint`` until the block ends."""

    def __init__(self, mode: str = "ok", token: str = TOKEN):
        self.mode = mode
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, set[str]] = {}
        self.lfs: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []
        self.commits: list[dict[str, Any]] = []
        self.headers_seen: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.timeout = 5
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def materialize(self, repo_id: str, folder: Path) -> Path:
        """Write what the repo holds into ``folder`` (as a clone would)."""
        for path, data in self.repos[repo_id].items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return folder

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub._dispatch(self, "GET")

            def do_POST(self) -> None:
                hub._dispatch(self, "POST")

            def do_PUT(self) -> None:
                hub._dispatch(self, "PUT")

        return Handler

    # -- plumbing -------------------------------------------------------------------
    def _reply(self, req: BaseHTTPRequestHandler, status: int, body: Any = None,
               code: str | None = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        if status >= 400:  # the Hub names the error in headers; huggingface_hub reads them
            req.send_header("X-Error-Message", (body or {}).get("error", "error"))
        if code:
            req.send_header("X-Error-Code", code)
        req.end_headers()
        req.wfile.write(data)

    def _dispatch(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        path = unquote(urlsplit(req.path).path)
        self.calls.append((method, path))
        self.headers_seen.append(json.dumps(dict(req.headers)))
        presigned = path.startswith("/lfs-upload/")  # like S3 URLs: no Hub credentials
        if not presigned and (req.headers.get("Authorization") != f"Bearer {self.token}"
                              or self.mode == "unauthorized"):
            return self._reply(req, 401, {"error": "Invalid credentials in Authorization header"})
        try:
            self._route(req, method, path, body)
        except Exception as exc:  # a bug in the stand-in must show up as a failed push
            self._reply(req, 500, {"error": f"fake hub: {exc!r}"})

    def _route(self, req: BaseHTTPRequestHandler, method: str, path: str, body: bytes) -> None:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/api/repos/create":
            return self._create(req, json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self._reply(req, 200, {"errors": [], "warnings": []})
        if method == "PUT" and parts[0] == "lfs-upload":
            oid = parts[1]
            if hashlib.sha256(body).hexdigest() != oid:
                return self._reply(req, 400, {"error": "sha256 mismatch"})
            self.lfs[oid] = body
            return self._reply(req, 200, {})
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            return self._lfs_batch(req, json.loads(body))
        if parts[:2] == ["api", "datasets"]:
            repo_id = "/".join(parts[2:4])
            if repo_id not in self.repos or self.mode == "forbidden":
                if self.mode == "forbidden":
                    return self._reply(req, 403, {"error": "Forbidden"})
                return self._reply(req, 404, {"error": "Repository not found"}, "RepoNotFound")
            rest = parts[4:]
            if not rest and method == "GET":
                return self._reply(req, 200, {"id": repo_id, "sha": "0" * 40, "private": False})
            if rest[:1] == ["branch"]:
                self.branches[repo_id].add("/".join(rest[1:]))
                return self._reply(req, 200, {})
            if rest[:1] == ["tree"]:
                return self._tree(req, repo_id, "/".join(rest[2:]))
            if rest[:1] == ["preupload"]:
                return self._preupload(req, json.loads(body))
            if rest[:1] == ["commit"]:
                return self._commit(req, repo_id, "/".join(rest[1:]), body)
        return self._reply(req, 404, {"error": f"no route {method} {path}"})

    # -- endpoints ------------------------------------------------------------------
    def _create(self, req: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        if self.mode == "forbidden":
            return self._reply(req, 403, {"error": "You don't have the rights to create a "
                                                   "dataset under this namespace"})
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get(
            "organization") else f"tester/{payload['name']}"
        if payload.get("type") != "dataset":
            return self._reply(req, 400, {"error": "expected a dataset repo"})
        if repo_id in self.repos:
            return self._reply(req, 409, {"error": "You already created this dataset repo",
                                          "url": f"{self.endpoint}/datasets/{repo_id}"})
        self.repos[repo_id] = {}
        self.branches[repo_id] = {"main"}
        return self._reply(req, 200, {"url": f"{self.endpoint}/datasets/{repo_id}",
                                      "name": repo_id})

    def _tree(self, req: BaseHTTPRequestHandler, repo_id: str, prefix: str) -> None:
        files = [p for p in self.repos[repo_id] if p.startswith(prefix.rstrip("/") + "/")]
        if not files:
            return self._reply(req, 404, {"error": "Entry not found"}, "EntryNotFound")
        return self._reply(req, 200, [
            {"type": "file", "path": p, "oid": hashlib.sha1(self.repos[repo_id][p]).hexdigest(),
             "size": len(self.repos[repo_id][p])} for p in sorted(files)])

    def _preupload(self, req: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        return self._reply(req, 200, {"files": [
            {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".parquet")
             else "regular", "shouldIgnore": False, "oid": None} for f in payload["files"]]})

    def _lfs_batch(self, req: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        return self._reply(req, 200, {"transfer": "basic", "objects": [
            {"oid": o["oid"], "size": o["size"],
             "actions": {"upload": {"href": f"{self.endpoint}/lfs-upload/{o['oid']}"}}}
            for o in payload["objects"]]})

    def _commit(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str,
                body: bytes) -> None:
        if self.mode == "readonly":
            return self._reply(req, 403, {"error": "You don't have write access to this repo"})
        if revision not in self.branches[repo_id]:
            return self._reply(req, 404, {"error": f"Revision not found: {revision}"},
                               "RevisionNotFound")
        items = [json.loads(line) for line in body.splitlines() if line.strip()]
        files = dict(self.repos[repo_id])
        for item in items:
            value = item["value"]
            if item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.lfs:
                    return self._reply(req, 422, {"error": f"LFS object {value['oid']} missing"})
                files[value["path"]] = self.lfs[value["oid"]]
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
        self.repos[repo_id] = files
        self.commits.append({"repo": repo_id, "revision": revision, "items": items})
        oid = hashlib.sha1(body).hexdigest()
        return self._reply(req, 200, {"commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/"
                                                   f"{oid}", "commitOid": oid})
