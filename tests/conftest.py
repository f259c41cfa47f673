"""Shared fixtures: a throw-away cache and results folder, the shared mirror, a local HTTP server; the CLI runner."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASTRONB = Path(sys.executable).parent / "astronb"  # the CLI of the environment the tests run in


def astronb(*args, cwd=None, timeout=900, env=None):
    """Run the astronb CLI on `args` (each str()-ed), its output captured as text. env: the whole environment
    (default: this one, TensorFlow's C++ logging quiet)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"} if env is None else env
    cmd = [str(ASTRONB), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    "Every test gets its own download cache, results and build folders; nothing touches the checkout's."
    monkeypatch.setenv("ASTRONB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ASTRONB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ASTRONB_BUILD", str(tmp_path / "build"))
    monkeypatch.delenv("ASTRONB_DATA_MIRROR", raising=False)


@pytest.fixture
def shared_mirror():
    "The real data mirror (../shared/data, or $ASTRONB_MIRROR_FOR_TESTS)."
    m = Path(os.environ.get("ASTRONB_MIRROR_FOR_TESTS", ROOT.parent / "shared" / "data"))
    assert m.is_dir(), (
        f"the shared data mirror {m} is missing: clone the project next to shared/ or set ASTRONB_MIRROR_FOR_TESTS"
    )
    return m


class _Handler(http.server.BaseHTTPRequestHandler):
    "Serves `server.files` (path -> bytes); honours Range; can drop the connection mid-file."

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        if self.path in srv.status:
            self.send_error(srv.status[self.path])
            return
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        drop = srv.drop_after.pop(self.path, None)
        if drop is not None:  # send part of the body, then close the connection
            self.wfile.write(chunk[:drop])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(chunk)


@pytest.fixture
def http_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.status, srv.drop_after, srv.requests, srv.ranges = {}, {}, {}, [], True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def md5(b):
    return hashlib.md5(b).hexdigest()


def zenodo_record(srv, record, files):
    "Publish a Zenodo-like API answer for `files` (name -> bytes) on the local server."
    entries = []
    for name, body in files.items():
        path = f"/api/records/{record}/files/{name}/content"
        srv.files[path] = body
        entries.append(
            {"key": name, "size": len(body), "checksum": f"md5:{md5(body)}", "links": {"self": srv.url + path}}
        )
    srv.files[f"/api/records/{record}"] = json.dumps({"id": record, "files": entries}).encode()
