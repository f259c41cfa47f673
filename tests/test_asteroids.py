"""asteroids: the classify CLI on the three kinds of input, and the bad-input behaviour the issue names."""

import os
import subprocess
import sys
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astronb import asteroids as ast

from conftest import astronb as run


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    "Weights of a briefly trained xception experiment-2 model (the CLI, not the skill, is under test)."
    d = tmp_path_factory.mktemp("w")
    sim = ast.simulate_cutouts(64, seed=0)
    m, _ = ast.train_classifier(
        "xception", 2, sim.subset(range(48)), sim.subset(range(48, 64)), ast.FitConfig(epochs=1, batch=16, verbose=0)
    )
    m.save_weights(str(d / "x2.weights.h5"))
    return d / "x2.weights.h5"


def classify_x2(weights, *inputs, out):
    "`astronb classify` with the module's xception experiment-2 weights."
    return run("classify", *inputs, "--model", "xception", "--experiment", 2, "--weights", weights, "--out", out)


def test_classify_ztf_alerts_and_a_corrupt_packet(weights, shared_mirror, tmp_path):
    alerts = sorted((shared_mirror / "ztf-alerts").glob("*.avro"))[:12]
    bad = tmp_path / "broken.avro"
    bad.write_bytes(alerts[0].read_bytes()[:500])
    out = tmp_path / "scores.csv"
    r = classify_x2(weights, *alerts, bad, out=out)
    assert r.returncode == 1, r.stderr[-2000:]  # some input left out: exit 1, the rest written
    assert r.stdout.strip().splitlines()[-1].endswith("1 input(s) left out (reported above)")
    assert "broken.avro" in r.stdout + r.stderr  # reported by name, not silently dropped
    df = pd.read_csv(out)
    assert len(df) == 12 and df.score.between(0, 1).all() and {"objectId", "source", "label"} <= set(df.columns)
    first = ["source", "candid", "objectId", "score", "asteroid", "regime", "reason", "crossmatch_valid"]
    assert df.columns[:8].tolist() == first and set(df.regime) <= {"history", "first detection"}


def test_classify_fits_with_detections_flags_the_edge(weights, tmp_path):
    img = np.random.default_rng(0).normal(100, 5, (80, 80)).astype(np.float32)
    fits.PrimaryHDU(img).writeto(tmp_path / "frame.fits")
    pd.DataFrame({"x": [40, 2], "y": [40, 79]}).to_csv(tmp_path / "det.csv", index=False)
    out = tmp_path / "s.csv"
    r = classify_x2(weights, f"{tmp_path / 'frame.fits'}:{tmp_path / 'det.csv'}", out=out)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(out)
    assert df.edge.tolist() == [False, True] and df.nan_fraction.iloc[1] > 0 and df.x.tolist() == [40, 2]


def test_classify_fits_without_data_fails_clearly(weights, tmp_path):
    fits.PrimaryHDU().writeto(tmp_path / "empty.fits")
    pd.DataFrame({"x": [1], "y": [1]}).to_csv(tmp_path / "det.csv", index=False)
    r = classify_x2(weights, f"{tmp_path / 'empty.fits'}:{tmp_path / 'det.csv'}", out=tmp_path / "s.csv")
    assert r.returncode == 2 and "empty.fits" in r.stderr and "no HDU holds image data" in r.stderr
    assert not (tmp_path / "s.csv").exists()


def test_classify_cutout_set(weights, tmp_path):
    sim = ast.simulate_cutouts(10, seed=5)
    sim.save(tmp_path / "set")
    r = classify_x2(weights, tmp_path / "set.npy", out=tmp_path / "s.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "s.csv")) == 10


def test_group_split_never_splits_an_object(shared_mirror):
    cs, _ = ast.ztf_cutouts(sorted((shared_mirror / "ztf-alerts").glob("*.avro")), report=lambda m: None)
    sp = ast.group_split(cs.index.objectId, cs.y, (0.6, 0.2, 0.2), seed=0)
    per_object = pd.Series(sp).groupby(cs.index.objectId.to_numpy()).nunique()
    assert (per_object == 1).all() and set(sp) == {"train", "val", "test"} and cs.y.sum() == 75


def test_ztf_label_audit_on_the_real_alerts(shared_mirror):
    """The cross-match check flags the rewritten records, never a labelled asteroid; real asteroids have an empty
    template."""
    files = sorted((shared_mirror / "ztf-alerts").glob("*.avro"))
    cs, bad = ast.ztf_cutouts(files, channels=ast.ZTF_CHANNELS, report=lambda m: None)
    idx = cs.index
    assert not bad and len(cs) == 390 and idx.label.sum() == 75
    assert (~idx.crossmatch_valid).sum() == 259 and idx.label[~idx.crossmatch_valid].sum() == 0
    assert (idx.ssdistnr[~idx.crossmatch_valid] > 30).all() and idx.ssdistnr[idx.crossmatch_valid].isin(
        [-999.0]
    ).sum() > 0
    tpl = ast.significance_sigma(cs.X[:, 14:19, 14:19, 1]).sum((1, 2)) / 5  # template signal at the candidate, in sigma
    assert np.mean(tpl[idx.label == 1] < 5) > 0.9 and np.mean(tpl[idx.label == 0] < 5) < 0.5
    assert abs(float(np.median(cs.X[idx.label == 1][..., 1])) - 0.5) < 0.05  # an empty template stays flat grey


def test_classify_parquet_alerts_with_a_card(weights, shared_mirror, tmp_path):
    """A Fink Parquet table gives one row per alert; the card's architecture and threshold are used, a flag overrides
    the threshold."""
    from astronb.cards import write_card
    import shutil

    w = tmp_path / "x2.weights.h5"
    shutil.copy(weights, w)
    card = write_card(w, "asteroids", dict(model="xception", experiment=2), dict(channels=1), dict(threshold=0.0), {})
    pq = sorted((shared_mirror / "ztf-alerts-extra").glob("*.parquet"))[-2]  # a small table (3 alerts)
    r = run("classify", pq, "--weights", card, "--out", tmp_path / "s.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(tmp_path / "s.csv")
    assert (
        len(df) == 3 and (df.source == pq.name).all() and df.asteroid.all()
    )  # threshold 0 from the card: every alert flagged
    r = run("classify", pq, "--weights", card, "--threshold", 1.0, "--out", tmp_path / "s2.csv")
    got = pd.read_csv(tmp_path / "s2.csv")  # the flag overrides the card's cut
    assert r.returncode == 0 and (got.asteroid == (got.score >= 1.0)).all()
    r = run("classify", pq, "--weights", card, "--threshold", 1.01, "--out", tmp_path / "s3.csv")
    assert r.returncode == 2 and "0 to 1" in r.stderr  # a cut no score can reach is refused
    w.write_bytes(b"not these weights")
    r = run("classify", pq, "--weights", card, "--out", tmp_path / "s3.csv")
    assert r.returncode == 2 and "SHA-256" in r.stderr and not (tmp_path / "s3.csv").exists()


def test_no_label_or_night_field_reaches_the_feature_model(shared_mirror):
    "The alert features of real alerts hold none of the forbidden fields, and the trainer refuses a table that does."
    import glob
    from astronb import asteroids as ast

    files = sorted(glob.glob(str(shared_mirror / "ztf-alerts-extra" / "*.avro")))[:20]
    cs, bad = ast.ztf_cutouts(files, channels=ast.ZTF_CHANNELS, report=lambda m: None)
    F = cs.index[[f"feat_{k}" for k in ast.ALERT_FEATURES]].rename(columns=lambda c: c.removeprefix("feat_"))
    assert not set(F.columns) & set(ast.FORBIDDEN_FEATURES) and len(F) == len(cs)
    for leak in ("ssdistnr", "ssnamenr", "jd", "nid", "field", "rcid", "ra"):
        with pytest.raises(ValueError, match=leak):
            ast.train_feature_classifier(F.assign(**{leak: 1.0}), [0, 1] * (len(F) // 2) + [0] * (len(F) % 2))


def test_classify_with_feature_model_cards(shared_mirror, tmp_path):
    """Trees on the alert features and a CNN with a feature branch, each applied through its card alone, give the
    scores of the model in memory; a pickle without its card, and FITS cutouts given to a feature model, are refused
    with a clear error."""
    from astronb.cards import write_card

    files = sorted((shared_mirror / "ztf-alerts-extra").glob("*.avro"))[:24]
    cs, _ = ast.ztf_cutouts(files, channels=ast.ZTF_CHANNELS, report=lambda m: None)
    F = ast.alert_feature_table(cs.index)
    y = (F.drb.fillna(0) > F.drb.median()).astype(int).to_numpy()  # any labels: the plumbing is under test
    trees = ast.train_feature_classifier(F, y, seed=0)
    jb = ast.save_feature_classifier(trees, tmp_path / "trees.joblib")
    r = run("classify", *files, "--weights", jb, "--out", tmp_path / "x.csv")
    assert r.returncode == 2 and "model card" in r.stderr and not (tmp_path / "x.csv").exists()
    card = write_card(
        jb, "asteroids", dict(framework="sklearn"), dict(features=list(ast.ALERT_FEATURES)), dict(threshold=0.5), {}
    )
    r = run("classify", *files, "--weights", card, "--out", tmp_path / "t.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(tmp_path / "t.csv")
    assert got.candid.tolist() == cs.index.candid.tolist() and np.allclose(
        got.score, trees.predict_proba(F)[:, 1], atol=1e-9
    )
    assert (got.asteroid == (got.score >= 0.5)).all()
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(tmp_path / "f.fits")
    pd.DataFrame(dict(x=[30.0], y=[30.0])).to_csv(tmp_path / "d.csv", index=False)
    r = run("classify", f"{tmp_path / 'f.fits'}:{tmp_path / 'd.csv'}", "--weights", card, "--out", tmp_path / "f.csv")
    assert r.returncode == 2 and "ZTF alerts" in r.stderr
    scaling = ast.feature_scaling(cs.index)
    m = ast.build_model("xception", 2, channels=3, n_features=ast.feature_width(scaling))
    m.save_weights(str(tmp_path / "xf.weights.h5"))
    card = write_card(
        tmp_path / "xf.weights.h5",
        "asteroids",
        dict(model="xception", experiment=2, framework="keras", n_features=ast.feature_width(scaling)),
        dict(channels=3, feature_scaling=scaling),
        dict(threshold=0.3),
        {},
    )
    r = run("classify", *files, "--weights", card, "--out", tmp_path / "c.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(tmp_path / "c.csv")
    assert (
        np.allclose(got.score, ast.predict_proba(m, cs, scaling=scaling), atol=1e-5)
        and (got.asteroid == (got.score >= 0.3)).all()
    )


def test_trainer_runs_mirrored_on_two_logical_cpu_devices(tmp_path):
    """The asteroid trainer under tf.distribute.MirroredStrategy: the CPU split into 2 logical devices (a fresh
    process), one epoch."""
    script = tmp_path / "two_devices.py"
    script.write_text("""
import json, numpy as np
from astronb import asteroids as ast
devs = ast.logical_cpus(2)
sim = ast.simulate_cutouts(64, seed=0)
fit = ast.FitConfig(epochs=1, batch=16, verbose=2, devices=devs)
m, h = ast.train_classifier("inceptionv3", 1, sim.subset(range(48)), sim.subset(range(48, 64)), fit)
p = ast.predict_proba(m, sim.subset(range(48, 64)))
print("RESULT", json.dumps(dict(devices=devs, loss=h["loss"], n=len(p), finite=bool(np.isfinite(p).all()))))
""")
    r = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "training on 2 replicas (MirroredStrategy)" in r.stdout
    import json

    res = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert (
        len(res["devices"]) == 2
        and len(res["loss"]) == 1
        and np.isfinite(res["loss"][0])
        and res["n"] == 16
        and res["finite"]
    )


def test_classify_on_two_dask_workers_equals_serial_and_resumes(weights, shared_mirror, tmp_path):
    """`classify --workers 2` scores alert files on a local Dask cluster: the same rows and scores as serial, a
    corrupt file reported, a lost part redone."""
    alerts = sorted((shared_mirror / "ztf-alerts-extra").glob("*.avro"))[:6]
    bad = tmp_path / "broken.avro"
    bad.write_bytes(alerts[0].read_bytes()[:500])
    args = ["--model", "xception", "--experiment", 2, "--weights", weights]
    r = run("classify", *alerts, *args, "--out", tmp_path / "serial.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("classify", *alerts, bad, *args, "--workers", 2, "--out", tmp_path / "dask.csv")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "left out: " in r.stderr and "broken.avro" in r.stderr
    a, b = pd.read_csv(tmp_path / "serial.csv"), pd.read_csv(tmp_path / "dask.csv")
    assert len(a) == len(b) == 6 and a.candid.tolist() == b.candid.tolist() and np.allclose(a.score, b.score, atol=1e-6)
    assert (a.asteroid == b.asteroid).all()
    parts = sorted((tmp_path / "dask.csv.parts").glob("*.parquet"))
    assert len(parts) == 7
    parts[2].unlink()
    r = run("classify", *alerts, bad, *args, "--workers", 2, "--out", tmp_path / "dask.csv")
    assert r.returncode == 1 and "6 frame(s) already done" in r.stdout + r.stderr, r.stderr[-2000:]
    assert pd.read_csv(tmp_path / "dask.csv").equals(b)
