"""A real JupyterLab: start a server on 127.0.0.1 (free port, token), open a study notebook through its REST API, run
it in a kernel that server starts, at smoke parameters, and check that figures (image/png) and tables (text/html)
come back; then shut everything down and check that no process is left. The notebook is `data_inventory` (the
quickest study, under a minute)."""

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STUDY = "data_inventory"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procs_mentioning(text):
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append((int(p.name), cmd))
    return out


@pytest.fixture
def lab(tmp_path, shared_mirror):
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(ROOT / "nbs" / "studies" / f"{STUDY}.ipynb", work / f"{STUDY}.ipynb")
    runtime = tmp_path / "runtime"
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "ASTRONB_HOME": str(ROOT),
        "ASTRONB_DATA_MIRROR": str(shared_mirror),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--ServerApp.port_retries=0",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(240):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if p.poll() is not None:
                pytest.fail("jupyter lab exited: " + p.stdout.read().decode()[-2000:])
            time.sleep(0.5)
    else:
        pytest.fail("jupyter lab did not answer within 2 minutes")
    yield dict(base=base, token=token, port=port, process=p, runtime=runtime, work=work)
    if p.poll() is None:
        os.killpg(p.pid, 9)
        p.wait()


def api(lab, method, path, body=None):
    import urllib.request

    req = urllib.request.Request(
        f"{lab['base']}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {lab['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        txt = r.read()
    return json.loads(txt) if txt else None


async def execute(lab, kernel_id, cells, timeout=900):
    """Run each code cell over the kernel's websocket; return, per cell, the MIME types of its outputs and its reply
    status."""
    from tornado.websocket import websocket_connect
    from tornado.httpclient import HTTPRequest

    ws = await websocket_connect(
        HTTPRequest(
            f"ws://127.0.0.1:{lab['port']}/api/kernels/{kernel_id}/channels",
            headers={"Authorization": f"token {lab['token']}"},
        )
    )
    session, results = uuid.uuid4().hex, []
    for code in cells:
        mid = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                dict(
                    header=dict(
                        msg_id=mid, username="test", session=session, msg_type="execute_request", version="5.3"
                    ),
                    parent_header={},
                    metadata={},
                    channel="shell",
                    content=dict(
                        code=code,
                        silent=False,
                        store_history=True,
                        user_expressions={},
                        allow_stdin=False,
                        stop_on_error=True,
                    ),
                )
            )
        )
        mimes, status, idle, err = set(), None, False, ""
        t0 = time.time()
        while status is None or not idle:
            if time.time() - t0 > timeout:
                raise TimeoutError(code[:80])
            msg = json.loads(await ws.read_message())
            if msg.get("parent_header", {}).get("msg_id") != mid:
                continue
            kind = msg["header"]["msg_type"]
            if kind in ("display_data", "execute_result"):
                mimes |= set(msg["content"]["data"])
            elif kind == "error":
                err = "\n".join(msg["content"]["traceback"])[-3000:]
            elif kind == "execute_reply":
                status = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        results.append(dict(code=code, mimes=mimes, status=status, error=err))
        if status != "ok":
            break
    ws.close()
    return results


def test_a_study_notebook_runs_in_jupyterlab_and_shows_figures_and_tables(lab):
    nb = api(lab, "GET", f"/api/contents/{STUDY}.ipynb")  # opened through the server, as JupyterLab does
    assert nb["type"] == "notebook" and nb["content"]["cells"]
    cells = nb["content"]["cells"]
    params = yaml.safe_load((ROOT / "params" / STUDY / "smoke.yaml").read_text())
    code = [
        ("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
        for c in cells
        if c["cell_type"] == "code"
    ]
    k = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    k = sum(
        1 for c in cells[: k + 1] if c["cell_type"] == "code"
    )  # smoke parameters right after the parameters cell, as papermill does
    code.insert(k, "\n".join(f"{n} = {v!r}" for n, v in params.items()))
    kernel = api(lab, "POST", "/api/kernels", {"name": "python3"})
    res = asyncio.run(execute(lab, kernel["id"], code))
    bad = [r for r in res if r["status"] != "ok"]
    assert not bad, f"cell failed in the JupyterLab kernel:\n{bad[0]['code'][:300]}\n{bad[0]['error']}"
    mimes = set().union(*(r["mimes"] for r in res))
    # figures come back as PNG; a large image of the sky is shown downscaled as JPEG (astronb.report._inline_image)
    assert "image/png" in mimes or "image/jpeg" in mimes, f"no figure came back from the kernel (got {sorted(mimes)})"
    assert "text/html" in mimes, f"no table came back from the kernel (got {sorted(mimes)})"
    api(lab, "DELETE", f"/api/kernels/{kernel['id']}")
    api(lab, "POST", "/api/shutdown")
    lab["process"].wait(timeout=60)
    time.sleep(1)
    left = [c for c in procs_mentioning(str(lab["runtime"]))]
    assert not left, f"processes left behind: {left}"


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_jupyterlab_shows_an_executed_study_notebook_with_its_figure(lab, tmp_path):
    """A headless browser (Debian's chromium) opens the published executed notebook in this JupyterLab; the screenshot
    (saved as build/jupyterlab_screenshot.png) must show the notebook's figure of sky frames."""
    exe = chromium()
    if exe is None:
        if os.environ.get("ASTRONB_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required (ASTRONB_REQUIRE_CHROMIUM=1): apt-get install chromium")
        pytest.skip(
            "no chromium on this machine (apt-get install chromium); "
            ".ci/run installs it and sets ASTRONB_REQUIRE_CHROMIUM=1"
        )
    executed = ROOT / "results" / STUDY / f"{STUDY}.ipynb"
    assert executed.exists(), f"{executed} is missing: run `astronb reproduce --only {STUDY}`"
    shutil.copy(executed, lab["work"] / "executed.ipynb")
    shot = ROOT / "build" / "jupyterlab_screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    url = f"{lab['base']}/lab/tree/executed.ipynb?token={lab['token']}&reset"
    r = subprocess.run(
        [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1400,6000",
            "--virtual-time-budget=60000",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shot.exists(), f"chromium wrote no screenshot (exit {r.returncode}): {r.stderr[-1500:]}"
    from PIL import Image
    import numpy as np

    g = np.asarray(Image.open(shot).convert("L"), float)
    assert g.std() > 10, "the screenshot is blank"
    # images of the sky are textured mid-grey: 16x16 blocks with std > 20 and mean < 170. JupyterLab's light theme,
    # code and tables give a few dozen such blocks at most (18 measured), the notebook's figure of 20 frames and stamps
    # thousands (3900)
    b = 16
    H, W = (np.array(g.shape) // b) * b
    blocks = g[:H, :W].reshape(H // b, b, W // b, b).swapaxes(1, 2).reshape(H // b, W // b, -1)
    n = int(((blocks.std(-1) > 20) & (blocks.mean(-1) < 170)).sum())
    assert n > 1000, f"no figure visible in the screenshot ({n} image-like 16x16 blocks): see {shot}"
