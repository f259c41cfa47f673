"""`astronb train asteroids`: the study's gated trees trained from the CLI on the development alerts; `classify`
applies the card as it is and reproduces the scores the training run reports; forbidden fields and bad labels are
refused."""

import json

import numpy as np
import pandas as pd

from conftest import astronb as run


def alerts(mirror):
    return sorted((mirror / "ztf-alerts").glob("*.avro")) + sorted((mirror / "ztf-alerts-extra").glob("*.avro"))


def test_train_asteroids_writes_a_card_that_classify_applies_as_it_is(shared_mirror, tmp_path):
    files = alerts(shared_mirror)
    r = run("train", "asteroids", *files, "--labels", "crossmatch", "--out", tmp_path / "m.joblib")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "out of fold: recall" in r.stdout and (tmp_path / "m.card.json").exists()
    train = pd.read_csv(tmp_path / "m.training_scores.csv", keep_default_na=False)
    assert len(train) > 150 and train.label.sum() > 50 and set(train.regime) == {"history", "first detection"}
    c = run("classify", *files, "--weights", tmp_path / "m.card.json", "--out", tmp_path / "c.csv")
    assert c.returncode == 0, c.stderr[-3000:]
    got = train.merge(pd.read_csv(tmp_path / "c.csv", keep_default_na=False), on="candid", suffixes=("", "_cli"))
    assert len(got) == len(train)
    np.testing.assert_array_equal(
        got.score.astype(float), got.score_cli.astype(float)
    )  # same model, same gate, same bits
    assert (got.asteroid == got.asteroid_cli).all() and (got.reason == got.reason_cli).all()
    card = json.loads((tmp_path / "m.card.json").read_text())
    m = card["test_metrics"]["out of fold, all training alerts (gate included)"]
    found = int(((train.oof_score >= card["operating_point"]["threshold"]) & (train.label == 1)).sum())
    assert m["alerts"] == len(train) and m["asteroids"] == int(train.label.sum()) and m["found"] == found
    assert m["recall"] >= 0.9 and card["operating_point"]["threshold"] > 0  # the recall asked for, out of fold


def test_train_asteroids_with_a_labels_csv_and_the_refusals(shared_mirror, tmp_path):
    files = alerts(shared_mirror)[:60]
    r = run(
        "train",
        "asteroids",
        *files,
        "--labels",
        "crossmatch",
        "--features",
        "drb,ssdistnr",
        "--out",
        tmp_path / "x.joblib",
    )
    assert r.returncode == 2 and "ssdistnr" in r.stderr and "must not reach a model" in r.stderr
    assert not (tmp_path / "x.joblib").exists()
    (tmp_path / "bad.csv").write_text("candid,asteroid\n1,1\n")
    r = run("train", "asteroids", *files, "--labels", tmp_path / "bad.csv", "--out", tmp_path / "x.joblib")
    assert r.returncode == 2 and "needs columns candid and label" in r.stderr
    r = run("train", "asteroids", *files, "--labels", "crossmatch", "--model", "stamps", "--out", tmp_path / "x.joblib")
    assert r.returncode == 2 and "nbs/studies/asteroids.ipynb" in r.stderr
    full = run("train", "asteroids", *alerts(shared_mirror), "--labels", "crossmatch", "--out", tmp_path / "a.joblib")
    assert full.returncode == 0, full.stderr[-3000:]
    t = pd.read_csv(tmp_path / "a.training_scores.csv")
    t[["candid", "label"]].to_csv(tmp_path / "labels.csv", index=False)  # the same labels as a user's CSV
    r = run(
        "train",
        "asteroids",
        *alerts(shared_mirror),
        "--labels",
        tmp_path / "labels.csv",
        "--out",
        tmp_path / "b.joblib",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    u = pd.read_csv(tmp_path / "b.training_scores.csv")
    assert u.candid.tolist() == t.candid.tolist() and np.array_equal(
        u.score, t.score
    )  # same alerts, same labels, same model
