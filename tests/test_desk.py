"""The astronomer's desk (issue #27): region files that DS9 and Aladin overlay, and a quiet command line."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS
from regions import Regions

from conftest import ASTRONB, astronb

MIRROR = Path(os.environ.get("ASTRONB_MIRROR_FOR_TESTS", Path(__file__).resolve().parents[2] / "shared" / "data"))


def run(*args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it, nothing set
    return astronb(*args, env=env)


def test_detect_writes_region_files_that_regions_reads_back(tmp_path):
    "One region per catalogue row: sky circles (ICRS) when the frame has a WCS, pixel circles otherwise."
    img = fits.getdata(MIRROR / "wfsat" / "242.fits").astype(np.float32)
    w = WCS(naxis=2)
    w.wcs.crpix, w.wcs.cdelt, w.wcs.crval, w.wcs.ctype = (
        [250, 250],
        [-2.3e-4, 2.3e-4],
        [150.0, 2.0],
        ["RA---TAN", "DEC--TAN"],
    )
    fits.PrimaryHDU(img, header=w.to_header()).writeto(tmp_path / "wcs.fits")
    r = run("detect", tmp_path / "wcs.fits", "--baseline", "sep", "--out", tmp_path / "cat.ecsv", "--regions")
    assert r.returncode == 0, r.stderr
    from astropy.table import Table

    cat = Table.read(tmp_path / "cat.ecsv").to_pandas()
    reg = Regions.read(tmp_path / "cat.reg", format="ds9")
    assert len(reg) == len(cat) > 50
    ra = np.array([x.center.icrs.ra.deg for x in reg])
    assert np.allclose(ra, cat.ra, atol=1e-6) and np.allclose([x.center.icrs.dec.deg for x in reg], cat.dec, atol=1e-6)
    r = run("detect", MIRROR / "wfsat" / "242.fits", "--baseline", "sep", "--out", tmp_path / "pix.reg")
    assert r.returncode == 0, r.stderr
    reg = Regions.read(tmp_path / "pix.reg", format="ds9")
    r = run("detect", MIRROR / "wfsat" / "242.fits", "--baseline", "sep", "--out", tmp_path / "pix.csv")
    cat = pd.read_csv(tmp_path / "pix.csv")
    assert len(reg) == len(cat) and np.allclose([x.center.x + 1 for x in reg], cat.x, atol=1e-6)  # DS9 counts from 1


def test_the_cli_prints_no_framework_log_noise(tmp_path):
    "classify with a Keras model on real alerts: TensorFlow's start-up lines are hidden, shown with --verbose."
    from astronb import asteroids as ast

    m = ast.build_model("xception", 2, channels=1)
    m.save_weights(str(tmp_path / "x.weights.h5"))
    alert = sorted((MIRROR / "ztf-alerts").glob("*.avro"))[0]
    args = ["classify", alert, "--weights", tmp_path / "x.weights.h5", "--model", "xception", "--experiment", 2]
    quiet = run(*args, "--out", tmp_path / "s.csv")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    loud = run("--verbose", *args, "--out", tmp_path / "s2.csv")
    assert loud.returncode == 0 and ("oneDNN" in loud.stderr or "absl" in loud.stderr or "I0000" in loud.stderr)


def test_progress_bars_on_a_terminal_only(tmp_path):
    "A serial detect over several frames shows a bar when asked (as on a terminal) and nothing in a log or pipe."
    frames = [MIRROR / "wfsat" / "242.fits", MIRROR / "wfsat" / "244.fits"]
    env = {**os.environ, "ASTRONB_PROGRESS": "1"}
    r = subprocess.run(
        [str(ASTRONB), "detect", *map(str, frames), "--baseline", "sep", "--out", str(tmp_path / "a.csv")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0 and "frames" in r.stderr and "2/2" in r.stderr, r.stderr
    quiet = run("detect", *frames, "--baseline", "sep", "--out", tmp_path / "b.csv")  # stderr is a pipe here
    assert quiet.returncode == 0 and "2/2" not in quiet.stderr and quiet.stderr.strip() == "", quiet.stderr
    assert pd.read_csv(tmp_path / "a.csv").equals(pd.read_csv(tmp_path / "b.csv"))
