"""Live sessions: `detect --watch` and `annotate --watch` process frames as they appear, wait for partial writes,
survive a corrupt frame, resume after a restart without redoing frames, and stop cleanly on SIGTERM."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from PIL import Image

from conftest import ASTRONB


def start(args, tmp_path, tag):
    out, err = open(tmp_path / f"{tag}.out", "w"), open(tmp_path / f"{tag}.err", "w")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "YOLO_OFFLINE": "1"}
    return subprocess.Popen([str(ASTRONB), *map(str, args)], stdout=out, stderr=err, env=env), tmp_path / f"{tag}"


def wait_for(cond, timeout=180.0, what="the watcher"):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.2)


def state_of(path):
    return json.loads(path.read_text()) if path.exists() else {}


def write_in_two_parts(src, dst, pause):
    data = src.read_bytes()
    with open(dst, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(pause)
        f.write(data[len(data) // 2 :])


def test_detect_watch_partial_write_corrupt_frame_restart_and_sigterm(shared_mirror, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out" / "session.ecsv"
    inbox.mkdir()
    out.parent.mkdir()
    state = out.with_name("session.ecsv.watch_state.json")
    args = ["detect", "--watch", inbox, "--baseline", "sep", "--out", out, "--settle", "1.0", "--poll", "0.1"]
    p, log = start(args, tmp_path, "run1")
    wf = shared_mirror / "wfsat"
    shutil.copy(wf / "242.fits", inbox / "a.fits")
    write_in_two_parts(wf / "244.fits", inbox / "b.fits", pause=0.3)  # shorter than --settle: read once, whole
    (inbox / "c.fits").write_bytes(b"not a FITS file at all" * 50)
    wait_for(lambda: len(state_of(state)) == 3, what="three frames")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) == 1  # a frame was left out
    stdout, stderr = Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()
    assert "c.fits: not a readable FITS file" in stderr and "b.fits" not in stderr, (
        stderr
    )  # the partial write was never read half-done
    lines = [ln for ln in stdout.splitlines() if ln.startswith(("a.fits:", "b.fits:"))]
    assert len(lines) == 2 and all("processed in" in ln and "latency" in ln for ln in lines), stdout
    assert "session ended: 2 frame(s) processed, 1 left out" in stdout
    for name, n in (("a", 242), ("b", 244)):  # each frame's catalogue equals a batch run on the same frame
        batch = tmp_path / f"batch{n}.csv"
        r = subprocess.run(
            [str(ASTRONB), "detect", str(wf / f"{n}.fits"), "--baseline", "sep", "--out", str(batch)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        live = Table.read(out.with_name(f"{name}.ecsv")).to_pandas()
        np.testing.assert_allclose(
            live[["x", "y", "flux"]].to_numpy(), pd.read_csv(batch)[["x", "y", "flux"]].to_numpy()
        )
        assert out.with_name(f"{name}.reg").exists()
    assert len(Table.read(out)) == sum(len(Table.read(out.with_name(f"{k}.ecsv"))) for k in "ab")
    before = out.with_name("a.ecsv").stat().st_mtime_ns
    shutil.copy(wf / "242.fits", inbox / "d.fits")  # arrives while no watcher runs
    p, log = start([*args, "--idle", "3"], tmp_path, "run2")
    assert p.wait(timeout=180) == 0
    stdout = Path(f"{log}.out").read_text()
    assert "3 frame(s) already seen in an earlier run, not redone" in stdout, stdout
    assert "d.fits:" in stdout and "a.fits:" not in stdout and "b.fits:" not in stdout
    assert out.with_name("a.ecsv").stat().st_mtime_ns == before
    assert set(Table.read(out)["frame"]) == {
        "a.fits",
        "b.fits",
        "d.fits",
    }  # the session catalogue kept the first run's frames


def test_annotate_watch_writes_each_image_and_the_session_table(tmp_path):
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO
    from astronb import deepspace as ds
    from astronb.cards import write_card

    w = tmp_path / "untrained.pt"
    YOLO("yolov8n.yaml").save(str(w))  # the pipeline, not the model's skill, is under test
    card = write_card(w, "deepspace", dict(framework="ultralytics"), dict(imgsz=320), dict(conf=0.0001), {})
    inbox, out = tmp_path / "inbox", tmp_path / "ann"
    inbox.mkdir()
    p, log = start(
        ["annotate", "--watch", inbox, "--weights", card, "--out", out, "--settle", "0.5", "--poll", "0.1"],
        tmp_path,
        "ann",
    )
    img, _ = ds.synthetic_frame(900, 700, seed=3)
    Image.fromarray(img).save(tmp_path / "f1.png")
    write_in_two_parts(tmp_path / "f1.png", inbox / "f1.png", pause=0.2)
    (inbox / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    wait_for(lambda: len(state_of(out / "watch_state.json")) == 2, what="two images")
    p.send_signal(signal.SIGINT)  # Ctrl-C
    assert p.wait(timeout=120) == 1
    stdout, stderr = Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()
    assert "left out: " in stderr and "broken.jpg" in stderr and "f1.png" not in stderr, stderr
    assert any(ln.startswith("f1.png:") and "latency" in ln for ln in stdout.splitlines()), stdout
    assert Image.open(out / "f1.png").size == (900, 700)
    det = pd.read_csv(out / "f1.csv")
    assert len(det) > 0 and pd.read_csv(out / "session.csv").equals(det)
    assert len((out / "f1.txt").read_text().splitlines()) == len(det)
