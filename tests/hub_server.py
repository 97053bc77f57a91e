"""A small, real HTTP server on 127.0.0.1 that speaks the part of the Hugging Face Hub API that
``huggingface_hub`` uses to publish and fetch a model or a data set, so the Hub code is tested through
the real client.

Spoken: ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``GET /api/models/{repo}[/revision/{rev}]``
(model info), ``GET /api/models/{repo}/tree/{rev}[/{path}]``, ``POST /api/models/{repo}/branch/{name}``,
``POST /api/models/{repo}/preupload/{rev}``, ``POST /api/models/{repo}/commit/{rev}`` (ndjson) and
``HEAD``/``GET /{repo}/resolve/{rev}/{path}``, with the Hub's error headers (``X-Error-Code``) and
download headers (``X-Repo-Commit``, ``ETag``, ``Content-Length``). Data-set repositories answer the
same calls under ``/api/datasets/{repo}/…`` and ``/datasets/{repo}/resolve/…``; they are kept apart
from the models (``FakeHub.datasets`` beside ``FakeHub.repos``), as on the Hub.

Every file is stored as a regular git blob: the pre-upload answer is always ``"regular"``, so the client
sends contents inline in the commit and never negotiates LFS or Xet storage. Each commit gets a new
40-hex revision; blobs are written under the server's directory, named by their git blob sha1.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

TOKEN = "hf_genkit_fake_write_token"
USER = "genkit-tester"

REPO = r"(?P<repo>[^/]+/[^/]+)"
KIND = r"(?P<kind>models|datasets)"  # the API's word for the kind of repository
ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("GET", re.compile(rf"^/api/{KIND}/{REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("GET", re.compile(rf"^/api/{KIND}/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$"), "tree"),
    ("POST", re.compile(rf"^/api/{KIND}/{REPO}/branch/(?P<rev>[^/]+)$"), "create_branch"),
    ("POST", re.compile(rf"^/api/{KIND}/{REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/{KIND}/{REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    # a model's files are under /{repo}/, a data set's under /datasets/{repo}/
    ("HEAD", re.compile(rf"^/(?:(?P<kind>datasets)/)?{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("GET", re.compile(rf"^/(?:(?P<kind>datasets)/)?{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


def git_blob_sha1(content: bytes) -> str:
    """The id git gives a blob, which the Hub also uses as a regular file's ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, str]  # path -> blob sha1
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


class HubError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, body: dict | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.headers, self.body = status, code, headers or {}, body or {}


class FakeHub:
    """The server's state: repositories, their commits and the blobs on disk. ``requests`` logs every call.

    ``repos`` holds the model repositories and ``datasets`` the data-set repositories, each by repo id.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.repos: dict[str, Repo] = {}
        self.datasets: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._counter = itertools.count()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- storage -------------------------------------------------------------------------------

    def blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def _store(self, content: bytes) -> str:
        oid = git_blob_sha1(content)
        path = self.root / "blobs" / oid
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return oid

    def _commit(self, repo: Repo, branch: str, files: dict[str, str], summary: str) -> Commit:
        parent = repo.branches.get(branch)
        seed = json.dumps([repo.repo_id, parent, sorted(files.items()), summary, next(self._counter)])
        oid = hashlib.sha1(seed.encode()).hexdigest()
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        commit = repo.commits[oid] = Commit(oid, parent, summary, dict(files), date)
        repo.branches[branch] = oid
        return commit

    def _kind(self, kind: str) -> dict[str, Repo]:
        return self.datasets if kind == "datasets" else self.repos

    def _repo(self, repo_id: str, authorized: bool, kind: str = "models") -> Repo:
        repo = self._kind(kind).get(repo_id)
        if repo is None or (repo.private and not authorized):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    # ---- endpoints: each returns (status, headers, body) -----------------------------------------

    def create_repo(self, request, authorized):
        _require_write(authorized)
        payload = request.json()
        repo_type = payload.get("type", "model")
        if repo_type not in ("model", "dataset"):
            raise HubError(400, "this test server hosts only model and data-set repositories")
        repos = self._kind(f"{repo_type}s")
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = f"{self.url}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
        private = payload.get("visibility", "public") == "private" or bool(payload.get("private"))
        with self.lock:
            if repo_id in repos:
                # the Hub's 409 names the existing repo's url, which the client returns for exist_ok=True
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            repo = repos[repo_id] = Repo(repo_id, private)
            gitattributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
            self._commit(repo, "main", {".gitattributes": self._store(gitattributes)}, "initial commit")
        return _json(200, {"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, request, authorized):
        content = request.json()["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
        if match is None:
            return _json(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]})
        try:
            metadata = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            return _json(400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []})
        if not isinstance(metadata, dict):
            return _json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
        return _json(200, {"errors": [], "warnings": []})

    def repo_info(self, request, authorized, repo, kind, rev=None):
        repo = self._repo(repo, authorized, kind)
        commit = self._revision(repo, rev or "main")
        card = _card_metadata(self.blob(commit.files["README.md"])) if "README.md" in commit.files else {}
        info = {
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "lastModified": commit.date,
            "tags": card.get("tags", []),
            "library_name": card.get("library_name"),
            "cardData": card or None,
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        }
        return _json(200, info)

    def tree(self, request, authorized, repo, kind, rev, path=None):
        repo = self._repo(repo, authorized, kind)
        commit = self._revision(repo, rev)
        prefix = f"{unquote(path).rstrip('/')}/" if path else ""
        recursive = request.query.get("recursive", ["False"])[0].lower() == "true"
        entries, folders = [], set()
        for file_path, oid in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            for depth in range(1, rest.count("/") + 1):
                folders.add(prefix + "/".join(rest.split("/")[:depth]))
            entries.append({"type": "file", "oid": oid, "size": len(self.blob(oid)), "path": file_path})
        folder_entries = [
            {"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "path": f} for f in sorted(folders)
        ]
        return _json(200, folder_entries + entries)

    def create_branch(self, request, authorized, repo, kind, rev):
        _require_write(authorized)
        repo = self._repo(repo, authorized, kind)
        branch = unquote(rev)
        start = request.json().get("startingPoint") or "main"
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = self._revision(repo, start).oid
        return _json(200, {})

    def preupload(self, request, authorized, repo, kind, rev):
        _require_write(authorized)
        repo = self._repo(repo, authorized, kind)
        commit = self._revision(repo, rev)
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": commit.files.get(f["path"])}
            for f in request.json()["files"]
        ]
        return _json(200, {"files": files, "commitOid": commit.oid})

    def commit(self, request, authorized, repo, kind, rev):
        _require_write(authorized)
        repo = self._repo(repo, authorized, kind)
        branch = unquote(rev)
        lines = [json.loads(line) for line in request.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with its header line")
        header = lines[0]["value"]
        with self.lock:
            head = self._revision(repo, branch)
            if header.get("parentCommit") not in (None, head.oid):
                raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {branch}")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = self._store(base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    files = {p: o for p, o in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                else:
                    raise HubError(
                        400, f"unsupported commit operation {key!r}: this server stores every file as a regular blob"
                    )
            commit = self._commit(repo, branch, files, header.get("summary", ""))
        url = f"{self.url}/{'datasets/' if kind == 'datasets' else ''}{repo.repo_id}"
        return _json(200, {"commitUrl": f"{url}/commit/{commit.oid}", "commitOid": commit.oid, "success": True})

    def resolve(self, request, authorized, repo, rev, path, kind="models"):
        repo = self._repo(repo, authorized, kind)
        commit = self._revision(repo, rev)
        path = unquote(path)
        oid = commit.files.get(path)
        if oid is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        content = self.blob(oid)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{oid}"', "Content-Type": "application/octet-stream"}
        return 200, headers, content


class _Request:
    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes):
        self.query = parse_qs(urlsplit(handler.path).query)
        self.headers = handler.headers
        self.body = body

    def json(self):
        return json.loads(self.body or b"{}")


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client expects; every answer sets Content-Length

        def log_message(self, format, *args):  # keep pytest output quiet
            pass

        def _serve(self):
            path = urlsplit(self.path).path
            hub.requests.append((self.command, path))
            body = self._read_body()
            authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            try:
                for method, pattern, name in ROUTES:
                    match = pattern.match(path)
                    if method == self.command and match:
                        kwargs = {k: v for k, v in match.groupdict().items() if v is not None}
                        status, headers, content = getattr(hub, name)(_Request(self, body), authorized, **kwargs)
                        break
                else:
                    raise HubError(404, f"no route for {self.command} {path}")
            except HubError as exc:
                status, content = exc.status, json.dumps({"error": str(exc), **exc.body}).encode()
                headers = {"Content-Type": "application/json", "X-Error-Message": str(exc), **exc.headers}
                if exc.code:
                    headers["X-Error-Code"] = exc.code
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().strip(), 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        do_GET = do_HEAD = do_POST = _serve

    return Handler


def _json(status: int, payload) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _require_write(authorized: bool) -> None:
    if not authorized:
        raise HubError(401, "Invalid credentials in Authorization header")


def _card_metadata(readme: bytes) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", readme.decode(errors="replace"), flags=re.S)
    metadata = yaml.safe_load(match.group(1)) if match else None
    return metadata if isinstance(metadata, dict) else {}


@pytest.fixture
def fake_hub(tmp_path_factory):
    """A fake Hub served on 127.0.0.1 for one test; its repositories live in a temporary directory."""
    hub = FakeHub(tmp_path_factory.mktemp("fake-hub")).start()
    yield hub
    hub.stop()


@pytest.fixture
def hub_env(fake_hub, tmp_path, monkeypatch):
    """A private Hugging Face cache and no ambient token, plus the environment a subprocess needs to use
    ``fake_hub``."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hf_constants

    # The client read these when it was imported; the in-process calls must use this test's cache.
    monkeypatch.setattr(hf_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    # What HF_ENDPOINT sets at import: calls that name no endpoint reach this server, never the real Hub.
    monkeypatch.setattr(hf_constants, "ENDPOINT", fake_hub.url)
    monkeypatch.setattr(
        hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    return {
        "HF_ENDPOINT": fake_hub.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
