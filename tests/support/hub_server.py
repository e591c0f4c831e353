"""A small fake Hugging Face Hub on 127.0.0.1, for testing the real ``huggingface_hub`` client.

It answers the endpoints that :class:`cortex.hub.hf.HFStore` reaches through ``huggingface_hub``:

    POST /api/repos/create                          create a model repo (409 when it exists)
    PUT  /api/models/{ns}/{name}/settings           visibility
    GET  /api/models/{ns}/{name}[/revision/{rev}]   repo info (sha, private)
    POST /api/models/{ns}/{name}/preupload/{rev}    upload modes: always "regular" (no LFS, no xet)
    POST /api/models/{ns}/{name}/commit/{rev}       ndjson commit: header, file (base64), deletedFile/Folder
    GET  /api/models/{ns}/{name}/tree/{rev}         file listing with sizes
    GET  /api/models/{ns}/{name}/commits/{rev}      history, newest first
    HEAD/GET /{ns}/{name}/resolve/{rev}/{path}      file metadata (X-Repo-Commit, ETag) and bytes
    POST /api/validate-yaml                         model card metadata check (always valid)

Faults are injected per request: ``hub.fail("PUT", "/settings", [429, 500])`` answers the next two
matching requests with those statuses. ``hub.calls`` records every request as (method, path).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

TOKEN = "hf_fake_token"
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    files: dict[str, bytes]
    date: str


@dataclass
class Repo:
    private: bool
    commits: list[Commit] = field(default_factory=list)  # oldest first; the last is "main"


@dataclass
class Fault:
    method: str
    path_part: str
    statuses: list[int]
    headers: dict[str, str]


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.calls: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.app = self._build_app()
        self._server: Optional[uvicorn.Server] = None
        self._thread: Optional[threading.Thread] = None
        self.url = ""

    # -- test controls -----------------------------------------------------------------------

    def fail(self, method: str, path_part: str, statuses: list[int], headers: Optional[dict[str, str]] = None) -> None:
        self.faults.append(Fault(method, path_part, list(statuses), headers or {}))

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p in self.calls if m == method and path_part in p)

    def start(self) -> "FakeHub":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake hub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            assert self._thread is not None
            self._thread.join(timeout=10)

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state helpers -----------------------------------------------------------------------

    def _commit(self, repo: Repo, files: dict[str, bytes], title: str, message: str = "") -> Commit:
        parent = repo.commits[-1].oid if repo.commits else ""
        seed = json.dumps([parent, next(self._counter), title, sorted((p, git_blob_sha(d)) for p, d in files.items())])
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), title, message, files, date)
        repo.commits.append(commit)
        return commit

    def _repo(self, request: Request, repo_id: str) -> Repo | JSONResponse:
        repo = self.repos.get(repo_id)
        authorized = request.headers.get("authorization") == f"Bearer {TOKEN}"
        if repo is None or (repo.private and not authorized):
            status = 404 if repo is None or authorized else 401
            return _error(status, "RepoNotFound", "Repository not found")
        return repo

    @staticmethod
    def _resolve(repo: Repo, rev: str) -> Commit | JSONResponse:
        if rev == "main":
            return repo.commits[-1]
        for commit in repo.commits:
            if commit.oid == rev:
                return commit
        return _error(404, "RevisionNotFound", "Invalid rev id")

    # -- the app -----------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:  # noqa: C901 - one small handler per endpoint
        app = FastAPI()
        hub = self

        @app.middleware("http")
        async def record_and_inject(request: Request, call_next):  # type: ignore[no-untyped-def]
            with hub._lock:
                hub.calls.append((request.method, request.url.path))
                for fault in hub.faults:
                    if fault.method == request.method and fault.path_part in request.url.path and fault.statuses:
                        status = fault.statuses.pop(0)
                        return Response(b"injected fault", status_code=status, headers=fault.headers)
            return await call_next(request)

        @app.post("/api/validate-yaml")
        async def validate_yaml() -> dict:
            return {"errors": [], "warnings": []}

        @app.post("/api/repos/create")
        async def create(request: Request):  # type: ignore[no-untyped-def]
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return _error(401, "Unauthorized", "Invalid credentials in Authorization header")
            body = await request.json()
            repo_id = f"{body['organization']}/{body['name']}"
            with hub._lock:
                if repo_id in hub.repos:
                    return JSONResponse({"error": "You already created this model repo"}, status_code=409)
                repo = hub.repos[repo_id] = Repo(private=body.get("visibility") == "private")
                hub._commit(repo, {".gitattributes": GITATTRIBUTES}, "initial commit")
            return {"url": f"{hub.url}/{repo_id}", "name": repo_id}

        @app.put("/api/models/{ns}/{name}/settings")
        async def settings(ns: str, name: str, request: Request):  # type: ignore[no-untyped-def]
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            body = await request.json()
            if "visibility" in body:
                repo.private = body["visibility"] == "private"
            return {}

        @app.get("/api/models/{ns}/{name}")
        @app.get("/api/models/{ns}/{name}/revision/{rev}")
        async def info(ns: str, name: str, request: Request, rev: str = "main"):  # type: ignore[no-untyped-def]
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            commit = hub._resolve(repo, rev)
            if isinstance(commit, JSONResponse):
                return commit
            siblings = [{"rfilename": path} for path in sorted(commit.files)]
            return {"id": f"{ns}/{name}", "sha": commit.oid, "private": repo.private, "siblings": siblings}

        @app.post("/api/models/{ns}/{name}/preupload/{rev}")
        async def preupload(ns: str, name: str, rev: str, request: Request):  # type: ignore[no-untyped-def]
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            commit = hub._resolve(repo, rev)
            if isinstance(commit, JSONResponse):
                return commit
            body = await request.json()
            files = []
            for item in body["files"]:
                existing = commit.files.get(item["path"])
                oid = git_blob_sha(existing) if existing is not None else None
                files.append({"path": item["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
            return {"files": files, "commitOid": commit.oid}

        @app.post("/api/models/{ns}/{name}/commit/{rev}")
        async def commit(ns: str, name: str, rev: str, request: Request):  # type: ignore[no-untyped-def]
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            if rev != "main":
                return _error(400, "BadRequest", "this fake hub only commits to main")
            lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
            with hub._lock:
                files = dict(repo.commits[-1].files)
                header = {}
                for line in lines:
                    key, value = line["key"], line["value"]
                    if key == "header":
                        header = value
                    elif key == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        files.pop(value["path"], None)
                    elif key == "deletedFolder":
                        prefix = value["path"].rstrip("/") + "/"
                        files = {p: d for p, d in files.items() if not p.startswith(prefix)}
                    else:
                        return _error(400, "BadRequest", f"this fake hub does not take {key!r} (no LFS)")
                new = hub._commit(repo, files, header.get("summary", ""), header.get("description", ""))
            return {"commitUrl": f"{hub.url}/{ns}/{name}/commit/{new.oid}", "commitOid": new.oid,
                    "pullRequestUrl": None, "success": True}

        @app.get("/api/models/{ns}/{name}/tree/{rev}")
        async def tree(ns: str, name: str, rev: str, request: Request, recursive: str = "false"):  # type: ignore
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            commit = hub._resolve(repo, rev)
            if isinstance(commit, JSONResponse):
                return commit
            deep = recursive.lower() == "true"
            entries, folders = [], set()
            for path, data in sorted(commit.files.items()):
                parts = path.split("/")
                for i in range(1, len(parts)):
                    folders.add("/".join(parts[:i]))
                if deep or len(parts) == 1:
                    entries.append({"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path})
            shown = [f for f in sorted(folders) if deep or "/" not in f]
            entries += [{"type": "directory", "oid": "0" * 40, "path": f} for f in shown]
            return entries

        @app.get("/api/models/{ns}/{name}/commits/{rev}")
        async def commits(ns: str, name: str, rev: str, request: Request):  # type: ignore[no-untyped-def]
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            head = hub._resolve(repo, rev)
            if isinstance(head, JSONResponse):
                return head
            upto = repo.commits[: repo.commits.index(head) + 1]
            return [{"id": c.oid, "title": c.title, "message": c.message, "date": c.date,
                     "authors": [{"user": "miner"}]} for c in reversed(upto)]

        @app.api_route("/{ns}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
        async def resolve(ns: str, name: str, rev: str, path: str, request: Request):  # type: ignore[no-untyped-def]
            repo = hub._repo(request, f"{ns}/{name}")
            if isinstance(repo, JSONResponse):
                return repo
            commit = hub._resolve(repo, rev)
            if isinstance(commit, JSONResponse):
                return commit
            data = commit.files.get(path)
            if data is None:
                return _error(404, "EntryNotFound", "Entry not found")
            headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_sha(data)}"'}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(data))
                return Response(status_code=200, headers=headers)
            return Response(data, status_code=200, headers=headers, media_type="application/octet-stream")

        return app
