"""Each bad input of issue #26's table gets one clear line naming the file, and the exit status follows the rule for
commands over many files: 0 all processed, 1 some left out (the good ones written), 2 usage error or nothing
processed."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from conftest import astronb as run

MIRROR = Path(os.environ.get("ASTRONB_MIRROR_FOR_TESTS", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def frames(tmp_path):
    "A good frame with sources and the bad frames of the issue's table."
    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (80, 90)).astype(np.float32)
    img[40, 45] += 500
    fits.PrimaryHDU(img).writeto(tmp_path / "good.fits")
    fits.PrimaryHDU(np.ones((3, 50, 60), np.float32)).writeto(tmp_path / "cube.fits")
    fits.PrimaryHDU(np.zeros((0, 0), np.float32)).writeto(tmp_path / "empty.fits")
    fits.PrimaryHDU(np.full((50, 60), np.nan, np.float32)).writeto(tmp_path / "nan.fits")
    (tmp_path / "truncated.fits").write_bytes((tmp_path / "good.fits").read_bytes()[:3000])
    (tmp_path / "not_a_model.fits").write_bytes((tmp_path / "good.fits").read_bytes())
    return tmp_path


@pytest.mark.parametrize(
    "name, says",
    [
        ("cube.fits", "a 3x50x60 cube, not a 2-D frame"),
        ("empty.fits", "the image is empty"),
        ("nan.fits", "no finite pixel"),
    ],
)
def test_a_frame_that_cannot_be_detected_on_is_named(frames, name, says):
    r = run("detect", frames / name, "--baseline", "sep", "--out", frames / "c.ecsv")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"left out: {frames / name}: {says}" in r.stderr and not (frames / "c.ecsv").exists()


def test_one_bad_frame_never_costs_the_good_ones(frames):
    r = run("detect", frames / "good.fits", frames / "truncated.fits", "--baseline", "sep", "--out", frames / "c.csv")
    assert r.returncode == 1 and "truncated.fits" in r.stderr and "1 input(s) left out" in r.stdout.splitlines()[-1]
    assert set(pd.read_csv(frames / "c.csv").frame) == {"good.fits"}


def test_a_file_that_is_not_a_model_is_one_line(frames):
    r = run("detect", frames / "good.fits", "--weights", frames / "not_a_model.fits", "--out", frames / "c.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "UnpicklingError" not in r.stderr.split(":")[0]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not_a_model.fits" in lines[0] and "model card" in lines[0]


@pytest.mark.parametrize(
    "option, value, says",
    [("--score-min", "7", "0 to 1"), ("--thresh", "0", "above 0"), ("--minarea", "0", "at least 1")],
)
def test_options_are_checked_by_the_parser(frames, option, value, says):
    r = run("detect", frames / "good.fits", "--baseline", "sep", option, value)
    assert r.returncode == 2 and option in r.stderr and says in r.stderr


def test_classify_with_no_readable_file_exits_2(tmp_path):
    real = sorted((MIRROR / "ztf-alerts").glob("*.avro"))[0]
    (tmp_path / "cut.avro").write_bytes(real.read_bytes()[:400])
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    from astronb import asteroids as ast
    from astronb.cards import write_card

    F = pd.DataFrame(
        np.random.default_rng(0).normal(size=(40, len(ast.ALERT_FEATURES))), columns=list(ast.ALERT_FEATURES)
    )
    w = ast.save_feature_classifier(ast.train_feature_classifier(F, (F.drb > 0).astype(int)), tmp_path / "t.joblib")
    card = write_card(
        w, "asteroids", dict(framework="sklearn"), dict(features=list(ast.ALERT_FEATURES)), dict(threshold=0.5), {}
    )
    r = run(
        "classify", tmp_path / "cut.avro", tmp_path / "junk.parquet", "--weights", card, "--out", tmp_path / "s.csv"
    )
    assert (
        r.returncode == 2
        and "cut.avro" in r.stderr
        and "junk.parquet" in r.stderr
        and not (tmp_path / "s.csv").exists()
    )
    r = run("classify", real, tmp_path / "cut.avro", "--weights", card, "--out", tmp_path / "s.csv")
    assert r.returncode == 1 and "cut.avro" in r.stderr and len(pd.read_csv(tmp_path / "s.csv")) == 1


def test_no_committed_result_names_a_machine_path():
    "Manifests and tables of the committed results name files relative to the project, not this machine's folders."
    root = Path(__file__).resolve().parent.parent
    bad = []
    for p in sorted((root / "results").rglob("*")):
        if p.suffix in (".json", ".csv", ".md") and p.is_file():
            text = p.read_text(errors="replace")
            bad += [
                f"{p.relative_to(root)}"
                for marker in ('"/work/', '"/tmp/', '"/home/', '"/root/', '"/Users/')
                if marker in text
            ]
    assert not bad, f"machine paths in committed results: {sorted(set(bad))}"
