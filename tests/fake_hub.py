"""A local stand-in for the Hugging Face hub: an HTTP server on 127.0.0.1 that answers the
endpoints ``huggingface_hub`` and ``transformers`` call when they download a model, so the real
download code (cache layout, progress bars, error mapping) runs without the network.

Endpoints (as in huggingface_hub 2.x): ``HEAD|GET /{repo}/resolve/{revision}/{file}``,
``GET /api/models/{repo}[/revision/{revision}]`` (repo info) and
``GET /api/models/{repo}/tree/{revision}[/path]`` (answered with an empty listing). Errors carry
the hub's ``X-Error-Code`` header (``RepoNotFound``, ``GatedRepo``, ``EntryNotFound``), which is
what huggingface_hub turns into ``RepositoryNotFoundError``/``GatedRepoError``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

LOOPBACK = ("127.0.0.1", "::1", "localhost")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeHub:
    """Repositories served (hub id -> directory), the gated ones, and every request seen."""

    repos: dict[str, Path] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def add(self, repo_id: str, directory: Path, *, gated: bool = False) -> None:
        self.repos[repo_id] = Path(directory)
        if gated:
            self.gated.add(repo_id)

    def downloads(self, repo_id: str) -> list[str]:
        """File names whose contents were fetched (``GET``) from ``repo_id``."""
        prefix = f"/{repo_id}/resolve/"
        return [
            path[len(prefix) :].split("/", 1)[1]
            for method, path in self.requests
            if method == "GET" and path.startswith(prefix)
        ]

    def asked_about(self, repo_id: str) -> bool:
        """Whether any request named ``repo_id``."""
        return any(
            path.startswith((f"/{repo_id}/", f"/api/models/{repo_id}")) for _, path in self.requests
        )


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    """Run ``hub`` on a free localhost port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _forbid_internet(monkeypatch: Any) -> None:
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host not in LOOPBACK:
                raise AssertionError(f"a test tried to connect to {address!r}")
        real_connect(sock, address)

    # bind addresses and this machine's own name (a local Dask cluster looks them up)
    local_names = (*LOOPBACK, None, "", "0.0.0.0", "::", socket.gethostname())

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in local_names:
            raise AssertionError(f"a test tried to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextmanager
def hub_for_tests(monkeypatch: Any, tmp_path: Path) -> Iterator[FakeHub]:
    """A fake hub that huggingface_hub and transformers talk to, an empty cache in ``tmp_path``,
    no token, and no way to reach the internet (non-loopback connections and name lookups
    fail the test). ``monkeypatch`` undoes every change when the test ends."""
    import transformers.utils.hub as transformers_hub
    from huggingface_hub import constants

    _forbid_internet(monkeypatch)
    with serve(FakeHub()) as fake:
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
            monkeypatch.setenv(variable, "")  # recorded, so a test's own change is undone too
            monkeypatch.delenv(variable)
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setattr(constants, "ENDPOINT", fake.url)
        template = fake.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "harnesses.json"))
        monkeypatch.setattr(transformers_hub, "_hf_api", None)  # rebuilt with the fake endpoint
        yield fake


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def _answer(self, *, with_body: bool) -> None:
            path = unquote(self.path.split("?", 1)[0])
            hub.requests.append((self.command, path))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"]:
                repo_id, rest = "/".join(parts[2:4]), parts[4:]
                if self._allowed(repo_id, with_body):
                    if rest[:1] == ["tree"]:
                        self._send(200, b"[]", with_body, {"Content-Type": "application/json"})
                    else:
                        self._repo_info(repo_id, with_body)
            elif len(parts) >= 5 and parts[2] == "resolve":
                repo_id, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if self._allowed(repo_id, with_body):
                    self._file(repo_id, filename, with_body)
            else:
                self._error(404, "EntryNotFound", with_body)

        def _allowed(self, repo_id: str, with_body: bool) -> bool:
            if repo_id not in hub.repos:
                self._error(401, "RepoNotFound", with_body)
                return False
            if repo_id in hub.gated:
                self._error(401, "GatedRepo", with_body)
                return False
            return True

        def _repo_info(self, repo_id: str, with_body: bool) -> None:
            files = sorted(p.name for p in hub.repos[repo_id].iterdir() if p.is_file())
            info = {"id": repo_id, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
            body = json.dumps(info).encode()
            self._send(200, body, with_body, {"Content-Type": "application/json"})

        def _file(self, repo_id: str, filename: str, with_body: bool) -> None:
            file = hub.repos[repo_id] / filename
            if not file.is_file():
                self._error(404, "EntryNotFound", with_body)
                return
            data = file.read_bytes()
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            self._send(200, data, with_body, {"X-Repo-Commit": COMMIT, "ETag": etag})

        def _error(self, status: int, code: str, with_body: bool) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": code}
            self._send(status, json.dumps({"error": code}).encode(), with_body, headers)

        def _send(self, status: int, data: bytes, with_body: bool, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                self.wfile.write(data)

    return Handler
