"""A real JupyterLab: start a server on 127.0.0.1 (free port, token), open a study notebook through its REST API, run it in a
kernel that server starts, at smoke parameters, and check that figures (image/png) and tables (text/html) come back; then shut
everything down and check that no process is left. The notebook is `data_inventory` (the quickest study, under a minute)."""
import asyncio, json, os, secrets, shutil, socket, subprocess, sys, time, uuid
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parent.parent
STUDY = "data_inventory"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def procs_mentioning(text):
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit(): continue
        try: cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError: continue
        if text in cmd: out.append((int(p.name), cmd))
    return out


@pytest.fixture
def lab(tmp_path, shared_mirror):
    work = tmp_path / "lab"; work.mkdir()
    shutil.copy(ROOT / "nbs" / "studies" / f"{STUDY}.ipynb", work / f"{STUDY}.ipynb")
    runtime = tmp_path / "runtime"; port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "ASTRONB_HOME": str(ROOT), "ASTRONB_DATA_MIRROR": str(shared_mirror),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    p = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                          f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0", *(["--allow-root"] if os.geteuid() == 0 else [])],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    import urllib.request
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2); break
        except OSError:
            if p.poll() is not None: pytest.fail("jupyter lab exited: " + p.stdout.read().decode()[-2000:])
            time.sleep(0.5)
    else: pytest.fail("jupyter lab did not answer within 2 minutes")
    yield dict(base=base, token=token, port=port, process=p, runtime=runtime, work=work)
    if p.poll() is None:
        os.killpg(p.pid, 9); p.wait()


def api(lab, method, path, body=None):
    import urllib.request
    req = urllib.request.Request(f"{lab['base']}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        txt = r.read()
    return json.loads(txt) if txt else None


async def execute(lab, kernel_id, cells, timeout=900):
    "Run each code cell over the kernel's websocket; return, per cell, the MIME types of its outputs and its reply status."
    from tornado.websocket import websocket_connect
    from tornado.httpclient import HTTPRequest
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{lab['port']}/api/kernels/{kernel_id}/channels",
                                             headers={"Authorization": f"token {lab['token']}"}))
    session, results = uuid.uuid4().hex, []
    for code in cells:
        mid = uuid.uuid4().hex
        ws.write_message(json.dumps(dict(header=dict(msg_id=mid, username="test", session=session, msg_type="execute_request", version="5.3"),
                                         parent_header={}, metadata={}, channel="shell",
                                         content=dict(code=code, silent=False, store_history=True, user_expressions={}, allow_stdin=False,
                                                      stop_on_error=True))))
        mimes, status, idle, err = set(), None, False, ""
        t0 = time.time()
        while status is None or not idle:
            if time.time() - t0 > timeout: raise TimeoutError(code[:80])
            msg = json.loads(await ws.read_message())
            if msg.get("parent_header", {}).get("msg_id") != mid: continue
            kind = msg["header"]["msg_type"]
            if kind in ("display_data", "execute_result"): mimes |= set(msg["content"]["data"])
            elif kind == "error": err = "\n".join(msg["content"]["traceback"])[-3000:]
            elif kind == "execute_reply": status = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle": idle = True
        results.append(dict(code=code, mimes=mimes, status=status, error=err))
        if status != "ok": break
    ws.close()
    return results


def test_a_study_notebook_runs_in_jupyterlab_and_shows_figures_and_tables(lab):
    nb = api(lab, "GET", f"/api/contents/{STUDY}.ipynb")                       # opened through the server, as JupyterLab does
    assert nb["type"] == "notebook" and nb["content"]["cells"]
    cells = nb["content"]["cells"]
    params = yaml.safe_load((ROOT / "params" / STUDY / "smoke.yaml").read_text())
    code = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in cells if c["cell_type"] == "code"]
    k = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    k = sum(1 for c in cells[:k + 1] if c["cell_type"] == "code")              # smoke parameters right after the parameters cell, as papermill does
    code.insert(k, "\n".join(f"{n} = {v!r}" for n, v in params.items()))
    kernel = api(lab, "POST", "/api/kernels", {"name": "python3"})
    res = asyncio.run(execute(lab, kernel["id"], code))
    bad = [r for r in res if r["status"] != "ok"]
    assert not bad, f"cell failed in the JupyterLab kernel:\n{bad[0]['code'][:300]}\n{bad[0]['error']}"
    mimes = set().union(*(r["mimes"] for r in res))
    assert "image/png" in mimes, f"no figure came back from the kernel (got {sorted(mimes)})"
    assert "text/html" in mimes, f"no table came back from the kernel (got {sorted(mimes)})"
    api(lab, "DELETE", f"/api/kernels/{kernel['id']}")
    api(lab, "POST", "/api/shutdown")
    lab["process"].wait(timeout=60)
    time.sleep(1)
    left = [c for c in procs_mentioning(str(lab["runtime"]))]
    assert not left, f"processes left behind: {left}"
