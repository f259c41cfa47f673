"""deepspace: tile + merge recovers boxes exactly (property-based), tiling and annotation from the CLI, reporting."""

import os
import subprocess
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image
from astronb import deepspace as ds
from astronb import sliced as sl

from conftest import ASTRONB


@st.composite
def scenes(draw):
    "An image size, a tiling, and separated boxes (some larger than a tile), in integer pixels."
    tile = draw(st.sampled_from([128, 200, 256]))
    overlap = draw(st.sampled_from([0.0, 0.2, 0.25, 0.5]))
    W = draw(st.integers(60, 900))
    H = draw(st.integers(60, 700))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    cell = draw(st.sampled_from([40, 90, 300]))  # 300 makes objects larger than a 128/200/256 tile
    boxes = []
    for cy in range(0, H - 8, cell):
        for cx in range(0, W - 8, cell):
            if rng.random() < 0.5:
                continue
            x1 = cx + 3 + rng.integers(0, 3)
            y1 = cy + 3 + rng.integers(0, 3)  # >= 3 px gap to the neighbours
            x2 = min(W, cx + cell - 3 - rng.integers(0, cell // 3))
            y2 = min(H, cy + cell - 3 - rng.integers(0, cell // 3))
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                boxes.append([x1, y1, x2, y2])
    return W, H, tile, overlap, np.array(boxes, float).reshape(-1, 4)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_tile_then_merge_recovers_every_box_exactly(scene):
    W, H, tile, overlap, truth = scene
    img = np.zeros((H, W, 3), np.uint8)
    tiles = iter(list(sl.tile_image(img, truth, tile, overlap, min_visible=0.0)))

    def ideal(patch):  # a perfect detector: the visible part of every true box in the tile
        x0, y0, p, bb, keep = next(tiles)
        return bb, np.linspace(0.9, 0.5, len(bb)), np.zeros(len(bb), int)

    got, _, _ = sl.sliced_predict(img, ideal, tile, overlap)
    assert sorted(map(tuple, np.round(got, 6))) == sorted(map(tuple, truth))


def test_tiles_cover_the_image_and_pad_the_border():
    img = (np.arange(700 * 1000 * 3) % 251).astype(np.uint8).reshape(700, 1000, 3)
    seen = np.zeros((700, 1000), bool)
    for x0, y0, patch, _, _ in sl.tile_image(img, (), 608, 0.2):
        assert patch.shape == (608, 608, 3)
        h, w = min(608, 700 - y0), min(608, 1000 - x0)
        assert (patch[:h, :w] == img[y0 : y0 + h, x0 : x0 + w]).all()
        seen[y0 : y0 + h, x0 : x0 + w] = True
    assert seen.all()
    ((x0, y0, patch, _, _),) = list(
        sl.tile_image(img[:300, :400], (), 608, 0.2)
    )  # smaller than a tile: one padded tile
    assert (patch[300:, :] == 0).all() and (patch[:, 400:] == 0).all()


def test_prepare_reports_bad_files_by_name(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(6):
        img, b = ds.synthetic_frame(128, 128, n_objects=1, seed=i)
        Image.fromarray(img).save(root / "images" / f"f{i}.jpg")
        (root / "labels" / f"f{i}.txt").write_text("\n".join(ds.to_yolo(b, 128, 128)) + "\n")
    (root / "labels" / "f1.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "f2.txt").write_text("0 0.5 1.3 0.1 0.1\n")
    (root / "labels" / "f3.txt").write_text("0 0.5 0.5 0.1\n")
    jpg = (root / "images" / "f4.jpg").read_bytes()
    (root / "images" / "f4.jpg").write_bytes(jpg[: len(jpg) // 2])
    prep = ds.prepare_dataset(root, tmp_path / "out")
    msgs = [str(i) for i in prep.issues]
    assert any("f1.txt, line 1" in m and "class id 7" in m for m in msgs)
    assert any("f2.txt, line 1" in m and "1.3" in m for m in msgs)
    assert any("f3.txt, line 1" in m and "got 4" in m for m in msgs)
    assert any("f4.jpg" in m and "truncated" in m for m in msgs)
    assert sorted(prep.split.image) == ["images/f0.jpg", "images/f5.jpg"]
    assert "f4.jpg" in (tmp_path / "out" / "issues.csv").read_text()


def test_side_by_side_layout(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(4):
        img, b = ds.synthetic_frame(96, 96, n_objects=1, seed=i)
        Image.fromarray(img).save(root / f"g{i}.png")
        if i:
            (root / f"g{i}.txt").write_text("\n".join(ds.to_yolo(b, 96, 96)) + "\n")
    pairs, issues = ds.find_pairs(root)
    assert not issues and [lab is None for _, lab in pairs] == [True, False, False, False]  # g0: a background image


@pytest.fixture(scope="module")
def big_frame(tmp_path_factory):
    d = tmp_path_factory.mktemp("frame")
    img, boxes = ds.synthetic_frame(3000, 2000, n_objects=(6, 8), seed=7)
    Image.fromarray(img).save(d / "frame.jpg", quality=92)
    (d / "frame.txt").write_text("\n".join(ds.to_yolo(boxes, 3000, 2000)) + "\n")
    return d / "frame.jpg", np.array([b[:4] for b in boxes])


def test_tile_cli_on_a_3000x2000_frame(big_frame, tmp_path):
    frame, boxes = big_frame
    r = subprocess.run(
        [
            str(ASTRONB),
            "tile",
            str(frame),
            "--out",
            str(tmp_path / "t"),
            "--size",
            "608",
            "--overlap",
            "0.2",
            "--min-visible",
            "1.0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    labels = sorted((tmp_path / "t" / "labels").glob("*.txt"))
    assert len(labels) == 6 * 4 and len(list((tmp_path / "t" / "images").glob("*.png"))) == 24
    found = set()
    for lab in labels:  # every box fully inside a tile maps back to its original pixels
        x0, y0 = (int(s[1:]) for s in lab.stem.split("_")[-2:])
        b, _ = ds.from_yolo(lab.read_text().splitlines(), 608, 608)
        found |= {tuple(np.round(x + [x0, y0, x0, y0], 2)) for x in b}
    tb = {tuple(np.round(b, 2)) for b in boxes}
    fits = {b for b in tb if b[2] - b[0] <= 608 * 0.2 and b[3] - b[1] <= 608 * 0.2}  # certainly whole in some tile
    assert fits <= {tuple(np.round(f, 2)) for f in found} | set()
    assert {tuple(np.round(f, 2)) for f in found} <= tb


def test_annotate_cli_on_a_3000x2000_frame(big_frame, tmp_path):
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO

    w = tmp_path / "untrained.pt"
    YOLO("yolov8n.yaml").save(str(w))  # the pipeline, not the model's skill, is under test
    frame, _ = big_frame
    r = subprocess.run(
        [str(ASTRONB), "annotate", str(frame), "--weights", str(w), "--out", str(tmp_path / "ann")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (
        r.returncode == 2 and "untrained.pt" in r.stderr and "model card" in r.stderr
    )  # a bare pickle is never loaded
    from astronb.cards import write_card

    write_card(w, "deepspace", dict(framework="ultralytics"), dict(imgsz=320), dict(conf=0.25), {})
    r = subprocess.run(
        [
            str(ASTRONB),
            "annotate",
            str(frame),
            "--weights",
            str(w),
            "--out",
            str(tmp_path / "ann"),
            "--imgsz",
            "320",
            "--conf",
            "0.0001",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "ann"
    assert Image.open(out / "frame.png").size == (3000, 2000)
    import pandas as pd

    det = pd.read_csv(out / "frame.csv")
    assert list(det.columns[:5]) == ["image", "x1", "y1", "x2", "y2"] and len(det) > 0
    assert det.x2.max() <= 3000 and det.y2.max() <= 2000 and (det.x1 < det.x2).all()
    assert len((out / "frame.txt").read_text().splitlines()) == len(det)
    from regions import Regions

    regs = Regions.read(out / "frame.reg", format="ds9")  # the DS9 / Aladin overlay of the same boxes
    assert len(regs) == len(det)
    r0, d0 = regs[0], det.iloc[0]
    assert np.isclose(r0.center.x, d0.x_center - 0.5) and np.isclose(
        r0.center.y, 2000 - d0.y_center - 0.5
    )  # rows from the bottom


def test_annotate_rejects_a_truncated_image(big_frame, tmp_path):
    frame, _ = big_frame
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(frame.read_bytes()[:5000])
    r = subprocess.run(
        [str(ASTRONB), "annotate", str(bad), "--weights", "nope.pt"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2 and "bad.jpg" in r.stderr and "truncated" in r.stderr


def test_train_resumes_an_interrupted_run(tmp_path):
    "Kill a training run after its first checkpoint; the same command resumes it instead of starting over."
    import time
    import signal

    env = {**os.environ, "ASTRONB_CACHE": str(tmp_path / "cache"), "YOLO_OFFLINE": "1"}
    cmd = [
        str(ASTRONB),
        "train",
        "deepspace",
        "--source",
        "synthetic",
        "--n-images",
        "16",
        "--epochs",
        "8",
        "--imgsz",
        "64",
        "--batch",
        "4",
        "--project",
        str(tmp_path / "runs"),
        "--name",
        "r",
    ]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = tmp_path / "runs" / "r" / "weights" / "last.pt"
    t0 = time.time()
    while not last.exists() and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.2)
    assert last.exists(), "no checkpoint was written"
    size = -1  # Ultralytics writes last.pt in place: kill after it is complete, not mid-write
    while last.stat().st_size != size and p.poll() is None:
        size = last.stat().st_size
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    import pandas as pd

    res = tmp_path / "runs" / "r" / "results.csv"
    done_before = len(pd.read_csv(res)) if res.exists() else 0
    assert done_before < 8
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Resuming training" in r.stdout + r.stderr
    assert pd.read_csv(res).epoch.max() == 8 and (tmp_path / "runs" / "r" / "weights" / "best.pt").exists()
    r2 = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # finished: not trained again
    assert r2.returncode == 0 and "Resuming" not in r2.stdout + r2.stderr and "Epoch" not in r2.stdout + r2.stderr


def test_export_to_openvino_then_annotate_with_the_exports_card(big_frame, tmp_path):
    """`astronb export --format openvino` writes Ultralytics' OpenVINO model in a folder with its card; annotate runs
    it like the .pt."""
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO
    from astronb.cards import write_card
    from astronb.runtime import catalogue_agreement
    import pandas as pd

    w = tmp_path / "yolo.pt"
    YOLO("yolov8n.yaml").save(str(w))
    card = write_card(w, "deepspace", dict(framework="ultralytics"), dict(imgsz=320), dict(conf=0.0001), {})
    r = subprocess.run(
        [str(ASTRONB), "export", str(card), "--format", "openvino"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "yolo_openvino_model"
    assert (folder / "yolo.xml").is_file() and (folder / "yolo.bin").is_file() and (folder / "yolo.card.json").is_file()
    frame, _ = big_frame
    outs = {}
    for name, wc in (("pt", card), ("ov", folder / "yolo.card.json")):
        r = subprocess.run(
            [str(ASTRONB), "annotate", str(frame), "--weights", str(wc), "--out", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr
        d = pd.read_csv(tmp_path / name / "frame.csv")
        outs[name] = pd.DataFrame(dict(x=d.x_center, y=d.y_center, cls=d.class_id))
    assert len(outs["pt"]) > 0 and catalogue_agreement(outs["pt"], outs["ov"])["fraction"] >= 0.99
