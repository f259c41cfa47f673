"""starfield: the detect and simulate CLI, FITS robustness, SExtractor and sep on the real frames, checkpoint resume,
ONNX Runtime, Dask workers and torchrun."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from astronb.core import file_digest
from astronb import starfield as sf
from astronb.io import FormatError, read_fits_image, read_truth_list

from conftest import ASTRONB, astronb as run


def test_simulate_and_detect_cli(tmp_path):
    r = run("simulate", "starfield", "--n", 2, "--size", 200, "--out", tmp_path / "sim")
    assert r.returncode == 0, r.stderr
    frames = sorted((tmp_path / "sim").glob("*.fits"))
    assert len(frames) == 2 and all(f.with_suffix(".list").exists() for f in frames)
    r = run("simulate", "starfield", "--n", 1, "--size", 200, "--galaxy-fraction", 0.6, "--out", tmp_path / "gal")
    assert r.returncode == 0, r.stderr
    codes = pd.read_csv(next((tmp_path / "gal").glob("*.list")), sep=" ", header=None)[0]
    assert 0.45 < (codes != 100).mean() < 0.75  # 250 sources drawn at 0.6 (default 0.1)
    r = run("simulate", "starfield", "--n", 1, "--galaxy-fraction", 1.5, "--out", tmp_path / "bad")
    assert r.returncode == 2 and "--galaxy-fraction" in r.stderr
    r = run("detect", *frames, "--baseline", "sep", "--out", tmp_path / "cat.csv")
    assert r.returncode == 0, r.stderr
    cat = pd.read_csv(tmp_path / "cat.csv")
    assert set(cat.frame) == {f.name for f in frames} and {"x", "y"} <= set(cat.columns)
    m = sf.build_detector("resnet18")
    torch.save({"model": m.state_dict()}, tmp_path / "w.pt")
    r = run("detect", frames[0], "--weights", tmp_path / "w.pt", "--score-min", 0.0, "--out", tmp_path / "net.csv")
    assert r.returncode == 0, r.stderr
    assert list(pd.read_csv(tmp_path / "net.csv").columns[:5]) == ["frame", "x", "y", "cls", "score"]


def test_detect_adds_radec_when_the_header_has_a_wcs(tmp_path):
    img, tr, _ = sf.simulate_frame(sf.SimConfig(size=120), seed=1)
    h = fits.PrimaryHDU(img)
    for k, v in dict(
        CTYPE1="RA---TAN",
        CTYPE2="DEC--TAN",
        CRVAL1=150.0,
        CRVAL2=2.0,
        CRPIX1=60,
        CRPIX2=60,
        CDELT1=-0.0008,
        CDELT2=0.0008,
    ).items():
        h.header[k] = v
    h.writeto(tmp_path / "wcs.fits")
    r = run("detect", tmp_path / "wcs.fits", "--baseline", "sep", "--out", tmp_path / "c.csv")
    assert r.returncode == 0, r.stderr
    c = pd.read_csv(tmp_path / "c.csv")
    assert {"ra", "dec"} <= set(c.columns) and c.ra.between(149.9, 150.1).all()
    # the default catalogue is an astropy Table with units and the run's provenance
    r = run("detect", tmp_path / "wcs.fits", "--baseline", "sep", "--zero-point", 25, "--out", tmp_path / "c.ecsv")
    assert r.returncode == 0, r.stderr
    t = Table.read(tmp_path / "c.ecsv")
    assert (str(t["x"].unit), str(t["ra"].unit), str(t["mag"].unit)) == ("pix", "deg", "mag") and len(t) == len(c)
    assert np.allclose(t["ra"], c.ra) and np.allclose(t["mag"], 25 - 2.5 * np.log10(c.flux), equal_nan=True)
    assert t.meta["method"] == "sep" and t.meta["frames"][0]["sha256"] == file_digest(tmp_path / "wcs.fits")
    assert t.meta["frames"][0]["zero_point"] == 25


def test_fits_robustness(tmp_path):
    img = np.full((64, 80), 41000, np.uint16)  # stored as int16 with BZERO = 32768
    fits.PrimaryHDU(img).writeto(tmp_path / "u16.fits")
    im, _ = read_fits_image(tmp_path / "u16.fits")
    assert im.shape == (64, 80) and im[0, 0] == 41000
    raw = np.full((64, 80), 1000, np.int32)
    raw[10, 10] = -1
    h = fits.PrimaryHDU(raw)
    h.header["BLANK"] = -1
    h.writeto(tmp_path / "blank.fits")
    im, _ = read_fits_image(tmp_path / "blank.fits")
    assert np.isnan(im[10, 10]) and np.isfinite(sf.normalise_frame(im)).all()
    fl = np.random.default_rng(0).normal(1000, 10, (90, 70)).astype(np.float32)
    fl[5:9, 5:9] = np.nan
    assert len(sf.detect_sep(fl)) >= 0 and np.isfinite(sf.normalise_frame(fl)).all()  # NaN blanks are masked, any size
    (tmp_path / "bad.list").write_text("100 10 10\n200 5\n")
    with pytest.raises(FormatError, match="bad.list, line 2"):
        read_truth_list(tmp_path / "bad.list")
    with pytest.raises(FileNotFoundError):
        read_truth_list(tmp_path / "missing.list")


def need_sextractor():
    "Skip without the SExtractor binary, unless CI requires it (ASTRONB_REQUIRE_SEXTRACTOR=1)."
    if sf.sextractor_binary() is None:
        if os.environ.get("ASTRONB_REQUIRE_SEXTRACTOR") == "1":
            pytest.fail("SExtractor is not installed: apt-get install source-extractor")
        pytest.skip(
            "SExtractor is not installed (optional: apt-get install source-extractor); "
            "CI sets ASTRONB_REQUIRE_SEXTRACTOR=1 and runs this"
        )


def test_sextractor_and_sep_on_the_real_frames(shared_mirror):
    need_sextractor()
    f = shared_mirror / "wfsat" / "242.fits"
    tr = read_truth_list(shared_mirror / "wfsat" / "242.list")
    sx = sf.score_frame(sf.detect_sextractor(f), tr)
    sp = sf.score_frame(sf.detect_sep(read_fits_image(f)[0]), tr)
    # the data description: the authors' SExtractor catalogue recovers about 0.35-0.43 of the listed objects at 1.5 px
    assert 0.3 < sx["recall"] < 0.6 and 0.2 < sp["recall"] < 0.6


def test_sextractor_reads_the_frame_the_network_reads(shared_mirror, tmp_path):
    """`detect --baseline sextractor` (and the network's fallback) runs SExtractor on the plane `read_frame` reads, so a
    tile-compressed, a gzipped and a multi-extension copy of a frame (the first two SExtractor cannot open itself) give
    the frame's own catalogue, in one run, each under its own name."""
    need_sextractor()
    img, hdr = read_fits_image(shared_mirror / "wfsat" / "242.fits")
    data = img.astype(np.float32)
    fits.writeto(tmp_path / "plain.fits", data)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1", quantize_level=0)]).writeto(
        tmp_path / "rice.fits"
    )
    fits.writeto(tmp_path / "gz.fits.gz", data)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data), fits.ImageHDU(data[::-1])]).writeto(tmp_path / "mef.fits")
    names = ["plain.fits", "rice.fits", "gz.fits.gz", "mef.fits"]
    r = run("detect", *[tmp_path / n for n in names], "--baseline", "sextractor", "--out", tmp_path / "c.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    cat = pd.read_csv(tmp_path / "c.csv")
    per = {n: cat[cat.frame == n][["x", "y", "flux"]].to_numpy() for n in names}
    assert len(per["plain.fits"]) > 100 and all(np.array_equal(per[n], per["plain.fits"]) for n in names)


def test_training_checkpoint_resumes(tmp_path):
    cfg = sf.SimConfig(size=160, gain=2.5, zero_point=31.6, sources_per_frame=40)
    frames = [sf.make_frame(*sf.simulate_frame(cfg, seed=s)[:2]) for s in range(2)]
    ck = tmp_path / "ck.pt"
    a = sf.build_detector("resnet18")
    la = sf.train_detector(a, frames, sf.CropTraining(steps=4, crop=96, batch=1, ckpt_every=2), ckpt=ck, progress=False)
    b = sf.build_detector("resnet18")  # a fresh process would start like this
    logs = []
    lb = sf.train_detector(
        b, frames, sf.CropTraining(steps=6, crop=96, batch=1, ckpt_every=2), ckpt=ck, progress=False, log=logs.append
    )
    assert (
        len(la) == 4
        and len(lb) == 6
        and lb[:4] == la
        and lb.start_step == 4
        and "resumed" in logs[0]
        and "step 4" in logs[0]
    )
    assert 0 < la.seconds < lb.seconds  # training time adds up across runs
    assert torch.load(ck, weights_only=False)["step"] == 6
    c = sf.build_detector("resnet18", fpn_channels=256)  # a checkpoint of another architecture is refused by name
    with pytest.raises(ValueError, match="ck.pt.*another architecture.*delete it"):
        sf.train_detector(c, frames, sf.CropTraining(steps=8, crop=96, batch=1), ckpt=ck, progress=False)


def test_fine_tuning_refuses_what_it_cannot_start_from_and_records_what_it_did(tmp_path):
    """`train starfield --weights` stops before any training, exit 2 and the file named, on a card that is not there,
    on 'default' before the study has made one (and says how to make it), on a --backbone other than the weights' and
    on a --seeing-copies factor that would sharpen the frame; from a bare checkpoint it fine-tunes, chooses the cut on
    its own frame and writes a card naming what it started from, with the seeing it was fitted on."""
    r = run("simulate", "starfield", "--n", 1, "--size", 160, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    frame = sorted(tmp_path.glob("*.fits"))[0]
    small = ["--crop", 64, "--batch", 1, "--steps", 1]
    r = run("train", "starfield", "--frames", frame, "--backbone", "resnet18", *small, "--out", tmp_path / "new.pt")
    assert r.returncode == 0 and not (tmp_path / "new.card.json").exists(), r.stderr[-2000:]  # no --val: no card
    for weights, says in (
        (tmp_path / "none.card.json", "none.card.json not found"),
        ("default", "astronb reproduce --only starfield"),
    ):
        r = run("train", "starfield", "--frames", frame, "--weights", weights, *small, "--out", tmp_path / "x.pt")
        assert r.returncode == 2 and says in r.stderr and not (tmp_path / "x.pt").exists(), r.stderr[-2000:]
    r = run("train", "starfield", "--frames", frame, "--weights", tmp_path / "new.pt", "--backbone", "resnet50")
    assert r.returncode == 2 and "is a resnet18 detector" in r.stderr, r.stderr[-2000:]
    copies = ["--seeing-copies", 1.5, 0.5, "--out", tmp_path / "y.pt"]
    r = run("train", "starfield", "--frames", frame, "--weights", tmp_path / "new.pt", *copies, *small)
    assert r.returncode == 2 and "seeing factor 0.5" in r.stderr and "factor >= 1" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "y.pt").exists() and not (tmp_path / "y.ckpt").exists()
    r = run(
        "train", "starfield", "--frames", frame, "--weights", tmp_path / "new.pt", *small, "--out", tmp_path / "ft.pt"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((tmp_path / "ft.card.json").read_text())
    assert (
        card["fine_tuned_from"] == {"weights": str(tmp_path / "new.pt")}
        and card["fine_tuned_on"] == f"frames {frame.name}"
    )
    assert "its fine-tuning frames" in card["operating_point"]["chosen_on"] and card["params"]["lr"] == 0.005
    assert set(card["operating_point"]["score_min_by_views"]) == {"1", "4", "8"} and "domain" in card


def test_training_twice_gives_identical_weights():
    "Same machine, same numbers: a short training run twice from the same seed gives byte-identical weights."
    import io
    import torch

    cfg = sf.SimConfig(size=96, sources_per_frame=20)
    frames = [sf.make_frame(*sf.simulate_frame(cfg, seed=s)[:2]) for s in range(2)]
    blobs = []
    for _ in range(2):
        torch.manual_seed(123)  # the untrained network's initialisation draws from torch's generator
        m = sf.build_detector("resnet18", detections=50, proposals=50)
        sf.train_detector(m, frames, sf.CropTraining(steps=3, crop=64, batch=2, lr=0.01, seed=7), progress=False)
        buf = io.BytesIO()
        torch.save({k: v.contiguous() for k, v in m.state_dict().items()}, buf)
        blobs.append(buf.getvalue())
    assert blobs[0] == blobs[1]


def test_detect_on_two_dask_workers_equals_serial_and_resumes(tmp_path):
    """`astronb detect --workers 2` (a local Dask cluster) writes the same catalogue as the serial run, keeps one
    part per frame, and a re-run after a lost part runs only that frame again."""
    from astropy.table import Table

    frames = []
    for s in range(4):
        img, tr, pr = sf.simulate_frame(sf.SimConfig(size=160), seed=10 + s)
        frames.append(sf.write_frame(tmp_path / f"f{s}.fits", img, tr, pr))
    r = run("detect", *frames, "--baseline", "sep", "--zero-point", 25, "--out", tmp_path / "serial.ecsv")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("detect", *frames, "--baseline", "sep", "--zero-point", 25, "--workers", 2, "--out", tmp_path / "par.ecsv")
    assert r.returncode == 0, r.stderr[-2000:]
    serial, par = Table.read(tmp_path / "serial.ecsv").to_pandas(), Table.read(tmp_path / "par.ecsv").to_pandas()
    assert len(serial) > 20 and serial.frame.nunique() == 4 and serial.equals(par)  # same rows, same order, same bits
    parts = sorted((tmp_path / "par.ecsv.parts").glob("*.parquet"))
    assert [p.name.split("_", 1)[1] for p in parts] == [f"f{s}.fits.parquet" for s in range(4)]
    parts[1].unlink()  # as if the run had been killed before frame 1 finished
    r = run("detect", *frames, "--baseline", "sep", "--zero-point", 25, "--workers", 2, "--out", tmp_path / "par.ecsv")
    assert r.returncode == 0 and "3 frame(s) already done" in r.stdout and "1 to go" in r.stdout, r.stdout
    assert Table.read(tmp_path / "par.ecsv").to_pandas().equals(serial)


def test_export_to_onnx_then_detect_on_onnx_runtime(tmp_path):
    """`astronb export` writes the detector to ONNX; `detect` runs the .onnx on ONNX Runtime and finds the eager
    model's sources; bad files are named."""
    from astronb.runtime import catalogue_agreement

    r = run("simulate", "starfield", "--n", 1, "--size", 300, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    frame = next(tmp_path.glob("*.fits"))
    torch.manual_seed(0)
    m = sf.set_galaxy_prior(sf.build_detector("resnet18"), 0.3, 0.05)
    torch.nn.init.normal_(m.rpn.head.cls_logits.weight, std=0.5)  # an untrained RPN scores all anchors alike: no ties
    torch.save({"model": m.state_dict()}, tmp_path / "w.pt")
    r = run("export", tmp_path / "w.pt")
    assert r.returncode == 2 and "--study starfield" in r.stderr  # no card says which study's model it is
    r = run("export", tmp_path / "w.pt", "--study", "starfield")
    assert r.returncode == 0 and (tmp_path / "w_onnx.onnx").is_file(), r.stderr
    for w, out in (("w.pt", "torch.csv"), ("w_onnx.onnx", "onnx.csv")):
        r = run("detect", frame, "--weights", tmp_path / w, "--score-min", 0.3, "--out", tmp_path / out)
        assert r.returncode == 0, r.stderr
    a, b = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert len(a) > 10 and catalogue_agreement(a, b)["fraction"] >= 0.99
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    r = run("detect", frame, "--weights", tmp_path / "junk.onnx", "--out", tmp_path / "x.csv")
    assert r.returncode == 2 and "junk.onnx" in r.stderr and "cannot load it" in r.stderr


def test_torchrun_two_processes_train_like_one(tmp_path):
    """`torchrun --nproc_per_node 2` (gloo on the CPU) trains the detector with DistributedDataParallel: both ranks
    end with identical parameters (checked by the trainer and printed by each rank), rank 0 writes the checkpoint and
    a re-run resumes from it, and at the same global batch the run follows the single-process one. Stated tolerance:
    the first step's loss (same weights, a different draw of the sampled anchors) within 1%, each later one within
    10%, weights within 0.01 after 3 steps."""
    r = run("simulate", "starfield", "--n", 2, "--size", 200, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    frames = sorted(tmp_path.glob("*.fits"))
    common = ["train", "starfield", "--frames", *frames, "--backbone", "resnet18", "--batch", 2, "--crop", 96]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [str(ASTRONB), *map(str, common + ["--steps", 3, "--val", frames[1], "--out", tmp_path / "one.pt"])],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    card = json.loads((tmp_path / "one.card.json").read_text())  # --val: the score cut chosen there, in a card
    op = card["operating_point"]  # chosen for the 8 test-time views that detect then runs (train's default)
    assert frames[1].name in op["chosen_on"] and 0 < op["score_min"] < 1 and op["views"] == 8
    r = run("detect", frames[0], "--weights", tmp_path / "one.card.json", "--out", tmp_path / "one.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "-m", "astronb.cli"]

    def train_on_two(steps):
        args = torchrun + list(map(str, common + ["--steps", steps, "--out", tmp_path / "two.pt"]))
        return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)

    two = train_on_two(3)
    assert two.returncode == 0, two.stderr[-3000:]
    ranks = re.findall(
        r"rank (\d) of 2: parameters ([0-9a-f]{64})", two.stdout
    )  # the two processes' lines may interleave
    digests = {d for _, d in ranks}
    assert sorted(r for r, _ in ranks) == ["0", "1"] and len(digests) == 1, two.stdout
    a, b = (torch.load(tmp_path / f"{n}.ckpt", weights_only=False) for n in ("one", "two"))
    assert a["step"] == b["step"] == 3
    la, lb = np.array(a["losses"]), np.array(b["losses"])
    assert abs(lb[0] / la[0] - 1) < 0.01 and (abs(lb / la - 1) < 0.10).all(), (la, lb)
    assert max(float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in a["model"]) < 0.01
    sd = torch.load(tmp_path / "two.pt", weights_only=True)
    assert (
        sf.parameters_digest(sf.load_detector(tmp_path / "two.pt")) == digests.pop() and "roi_heads.galaxy_odds" in sd
    )
    again = train_on_two(4)
    assert again.returncode == 0 and again.stdout.count("at step 3") == 2, again.stdout + again.stderr[-2000:]
    assert torch.load(tmp_path / "two.ckpt", weights_only=False)["step"] == 4


class PeakDetector:
    """A perfect point-source finder standing in for the network, to test the tiling alone: a box of the star size
    around each local maximum."""

    def eval(self):
        return self

    def __call__(self, images):
        from scipy.ndimage import maximum_filter

        out = []
        for im in images:
            a = im[0].numpy()
            ys, xs = np.nonzero((a == maximum_filter(a, size=5)) & (a > 0.5))
            h, w = a.shape
            b = (
                np.stack([xs + 0.5 - 5, ys + 0.5 - 5, xs + 0.5 + 5, ys + 0.5 + 5], 1).clip(0, [w, h, w, h])
                if len(xs)
                else np.zeros((0, 4))
            )
            out.append(
                dict(
                    boxes=torch.tensor(b, dtype=torch.float32),
                    scores=torch.full((len(b),), 0.9),
                    labels=torch.ones(len(b), dtype=torch.int64),
                )
            )
        return out


def test_a_large_frame_in_tiles_finds_sources_on_tile_borders_once():
    """detect_frame on a frame larger than a tile: sources on every inner tile edge and corner, and 1-2 px either
    side of them, are each found exactly once, where they are (a perfect peak finder stands in for the network, so
    only the tiling is tested)."""
    from astronb.sliced import tile_origins
    from astronb.metrics import match_points

    size, tile, overlap = 700, 256, 0.1
    edges = sorted({e for s in tile_origins(size, tile, overlap) for e in (s, s + tile)} - {0, size})
    rng = np.random.default_rng(0)
    for shift in (-2, -1, 0, 1, 2):
        axis = [e + shift + d for e in edges for d in (-13, 0, 13)]  # on each tile edge, and either side of it
        axis += [v for v in range(8, size - 8, 13) if min(abs(v - a) for a in axis) >= 13]
        axis = sorted(v for v in set(axis) if 8 <= v <= size - 9)
        xy = np.array([(x, y) for x in axis for y in axis], float)
        img = 100.0 + rng.normal(0, 1.0, (size, size))
        yy, xx = np.mgrid[-7:8, -7:8]
        stamp = 2000.0 * np.exp(-(xx**2 + yy**2) / (2 * 1.3**2))
        for x, y in xy.astype(int):
            img[y - 7 : y + 8, x - 7 : x + 8] += stamp
        cat = sf.detect_frame(PeakDetector(), img, tile=tile, overlap=overlap, score_min=0.5)
        m = match_points(
            cat[["x", "y"]].to_numpy() - 1, xy + 0.5, 1.0
        )  # catalogue x, y are 1-based; pixel centres at +0.5
        assert len(m) == len(xy) == len(cat), (shift, len(m), len(xy), len(cat))
    with pytest.raises(ValueError, match="overlap"):
        sf.detect_frame(PeakDetector(), img, tile=64, overlap=0.1)


def test_merge_detections_means_over_every_model():
    a = pd.DataFrame(dict(x=[10.0, 50.0], y=[10.0, 50.0], score=[0.9, 0.6], cls="star"))
    b = pd.DataFrame(dict(x=[11.0, 90.0], y=[10.0, 90.0], score=[0.7, 0.8], cls="star"))
    c = pd.DataFrame(
        dict(x=[10.5], y=[12.0], score=[0.5], cls="galaxy")
    )  # 2 px from the first cluster's mean: a cluster of its own
    m = sf.merge_detections([a, b, c]).sort_values("x").reset_index(drop=True)
    assert len(m) == 4
    assert np.isclose(m.x[0], 10.5) and np.isclose(m.score[0], (0.9 + 0.7) / 3)  # c missed it: counts as 0
    assert np.isclose(m.score[1], 0.5 / 3) and np.isclose(m.score[3], 0.8 / 3)


def test_merge_detections_takes_one_detection_per_model():
    a = pd.DataFrame(
        dict(x=[10.0, 10.5], y=[10.0, 10.0], score=[0.9, 0.8], cls="star")
    )  # two of one model's, 0.5 px apart
    assert len(sf.merge_detections([a])) == 2


def test_views_of_a_frame_find_each_source_once_where_it_is():
    """detect_frame with 4 and 8 views on a frame that is not square, with sources off the pixel grid's symmetry: a
    peak finder finds each source in every view, so after the views are moved back and merged each source is there
    once, at its place, with its full score; a view that is not moved back correctly would split or shift them."""
    from astronb.metrics import match_points

    rng = np.random.default_rng(3)
    h, w = 180, 260
    xy = np.array([(x, y) for x in range(20, w - 20, 37) for y in range(15, h - 15, 29)], int)
    img = 100.0 + rng.normal(0, 1.0, (h, w))
    yy, xx = np.mgrid[-7:8, -7:8]
    for x, y in xy:
        img[y - 7 : y + 8, x - 7 : x + 8] += 2000.0 * np.exp(-(xx**2 + yy**2) / (2 * 1.3**2))
    one = sf.detect_frame(PeakDetector(), img, score_min=0.5)
    assert len(match_points(one[["x", "y"]].to_numpy() - 0.5, xy + 0.5, 0.01)) == len(xy)  # one view: exact
    for views in (4, 8):
        cat = sf.detect_frame(PeakDetector(), img, score_min=0.5, views=views)
        assert len(cat) == len(one) == len(xy) and np.allclose(cat.score, 0.9)
        m = match_points(cat[["x", "y"]].to_numpy() - 0.5, xy + 0.5, 0.01)  # 1-based; a pixel's centre at +0.5
        assert len(m) == len(xy), views


def test_detect_runs_the_views_its_card_chose(tmp_path):
    """A card whose operating point says 8 views: `astronb detect --weights CARD` runs them (the catalogue is
    `detect_frame(..., views=8)`'s, its metadata says 8); `--views 1` overrides it, with a note that the card's cut
    was chosen for 8 views."""
    from astropy.table import Table
    from astronb.cards import write_card

    img, _, _ = sf.simulate_frame(sf.SimConfig(size=160), seed=2)
    fits.PrimaryHDU(img).writeto(tmp_path / "f.fits")
    torch.manual_seed(0)
    m = sf.build_detector("resnet18")
    torch.nn.init.normal_(m.rpn.head.cls_logits.weight, std=0.5)  # an untrained RPN scores all anchors alike: no ties
    torch.save({"model": m.state_dict()}, tmp_path / "w.pt")
    card = write_card(tmp_path / "w.pt", "starfield", {}, dict(normalisation="asinh"), dict(score_min=0.1, views=8), {})
    r = run("detect", tmp_path / "f.fits", "--weights", card, "--out", tmp_path / "c.ecsv")
    assert r.returncode == 0 and "note" not in r.stderr, r.stderr[-2000:]
    got = Table.read(tmp_path / "c.ecsv")
    want = sf.detect_frame(sf.load_detector(tmp_path / "w.pt"), img.astype(np.float32), "asinh", 0.1, views=8)
    assert got.meta["views"] == 8 and len(got) == len(want) > 0
    assert np.allclose(np.sort(got["x"]), np.sort(want.x), atol=1e-4)
    r = run("detect", tmp_path / "f.fits", "--weights", card, "--views", 1, "--out", tmp_path / "one.ecsv")
    assert r.returncode == 0 and "chosen for 8 view(s), not 1" in r.stderr, r.stderr[-2000:]
    assert Table.read(tmp_path / "one.ecsv").meta["views"] == 1


def test_bench_detect_times_the_views_its_card_chose(tmp_path):
    """`astronb bench detect --runtime` times a card's detector with the card's test-time views (as `detect` runs it)
    on every runtime and sep, side by side, each runtime's agreement measured against eager torch with the same
    views, and with `--peak-rss` each one's memory on one frame; views that `detect_frame` does not offer are a usage
    error."""
    from astronb.cards import write_card

    torch.manual_seed(0)
    m = sf.build_detector("resnet18")
    torch.nn.init.normal_(m.rpn.head.cls_logits.weight, std=0.5)  # an untrained RPN scores all anchors alike: no ties
    torch.save({"model": m.state_dict()}, tmp_path / "w.pt")
    card = write_card(tmp_path / "w.pt", "starfield", {}, dict(normalisation="asinh"), dict(score_min=0.1, views=4), {})
    args = ("bench", "detect", "--runtime", "torch", "openvino", "--weights", card, "--frames", 1, "--size", 128)
    r = run(*args, "--repeats", 1, "--peak-rss", "--out", tmp_path / "b.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    b = pd.read_csv(tmp_path / "b.csv")
    assert list(zip(b.runtime, b.views)) == [("torch", 4), ("openvino", 4), ("sep", 1)], b
    assert b.s_per_frame.gt(0).all() and b.ratio_vs_torch[0] == 1 and b.ratio_vs_sep[2] == 1
    assert b.rss_loaded_mib.gt(100).all() and b.rss_peak_mib.ge(b.rss_loaded_mib).all()  # each in its own process
    assert b.detections[0] > 0 and b.agreement[1] >= 0.99  # OpenVINO in float32 finds eager torch's sources
    r = run(*args, "--views", 3)
    assert r.returncode == 2 and "invalid choice: 3" in r.stderr, r.stderr[-2000:]
