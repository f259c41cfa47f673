"""The studies' saved models, used through the CLI with nothing but their card, reproduce the studies' test numbers.

These tests need the models of a reproduce run (`astronb reproduce`, which writes them under build/): without them they skip,
unless ASTRONB_REQUIRE_PRODUCTS=1 (set by .ci/run after its smoke reproduction), where a missing model is a failure."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from astronb.io import read_truth_list
from astronb import starfield as sf

ASTRONB = Path(sys.executable).parent / "astronb"
RESULTS = Path(__file__).resolve().parent.parent / "results"      # the checkout's own results, not the isolated test folder


def card_of(study, key):
    man = RESULTS / study / "manifest.json"
    card = Path(json.loads(man.read_text()).get("models", {}).get(key, "")) if man.exists() else None
    if card is None or not card.is_file():
        if os.environ.get("ASTRONB_REQUIRE_PRODUCTS") == "1": pytest.fail(f"{study}: model '{key}' of the last reproduce run is missing ({card})")
        pytest.skip(f"no saved {study} model from a reproduce run here (run `astronb reproduce --only {study}` first)")
    return card


def run(*args):
    return subprocess.run([str(ASTRONB), *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_detect_with_the_card_reproduces_the_two_fold_rows(shared_mirror, tmp_path):
    table = pd.read_csv(RESULTS / "starfield" / "real_frames.csv")
    for n_ft, n_test in ((242, 244), (244, 242)):
        card = card_of("starfield", f"ft{n_ft}")
        out = tmp_path / f"{n_test}.csv"
        r = run("detect", shared_mirror / "wfsat" / f"{n_test}.fits", "--weights", card, "--out", out)
        assert r.returncode == 0, r.stderr[-2000:]
        s = sf.score_frame(pd.read_csv(out), read_truth_list(shared_mirror / "wfsat" / f"{n_test}.list"))
        row = table[(table.frame == n_test) & (table.method == f"network (fine-tuned on {n_ft})")].iloc[0]
        assert (s["n_det"], s["matched"]) == (row.n_det, row.matched) and np.isclose(s["f1"], row.f1, rtol=1e-9, atol=0)


@pytest.mark.parametrize("key", ["stamps_cnn", "alert_features", "stamps_and_features"])
def test_classify_with_the_card_reproduces_the_test_alerts(shared_mirror, tmp_path, key):
    "Each of the asteroid study's three models (a)-(c), through `classify` and its card alone, gives the study's test scores and rows."
    card = card_of("asteroids", key)
    test = pd.read_csv(RESULTS / "asteroids" / "ztf_test_scores.csv")
    test = test[test.model == key]
    files = sorted({shared_mirror / f / s for f, s in zip(test.folder, test.source)})
    r = run("classify", *files, "--weights", card, "--out", tmp_path / "s.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    got = test.merge(pd.read_csv(tmp_path / "s.csv")[["candid", "score", "asteroid"]], on="candid", suffixes=("", "_cli"))
    assert len(got) == len(test) > 0
    assert (got.asteroid == got.asteroid_cli).all() and np.allclose(got.score, got.score_cli, atol=1e-5)
    res = pd.read_csv(RESULTS / "asteroids" / "ztf_results.csv")
    c = json.loads(Path(card).read_text())
    row = res[(res.variant.str.split(": ", n=1).str[1] == c["variant"]) & (res.threshold_rule != "0.5") & (res.test_alerts_used == "cross-match valid")]
    assert len(row) == 1
    v = got[got.crossmatch_valid]
    assert int((v.asteroid_cli & (v.label == 1)).sum()) == row.found.iloc[0] and int(v.asteroid_cli.sum()) == row.flagged.iloc[0]


def test_the_study_model_is_the_one_chosen_on_validation():
    "models.asteroids is the card marked as the study's model, and the three-model table names the same one."
    cards = {k: json.loads(card_of("asteroids", k).read_text()) for k in ("asteroids", "stamps_cnn", "alert_features", "stamps_and_features")}
    assert cards["asteroids"]["study_model"] and sum(cards[k]["study_model"] for k in ("stamps_cnn", "alert_features", "stamps_and_features")) == 1
    three = pd.read_csv(RESULTS / "asteroids" / "ztf_three_models.csv")
    assert three[three.study_model].model.tolist() == [cards["asteroids"]["role"]]
    best = max(("stamps_cnn", "alert_features", "stamps_and_features"),
               key=lambda k: (cards[k]["operating_point"]["val_precision"], cards[k]["operating_point"]["val_average_precision"]))
    assert cards[best]["study_model"]


def test_annotate_with_the_card_reproduces_the_whole_frame(tmp_path):
    man = RESULTS / "deepspace" / "manifest.json"
    man = json.loads(man.read_text()) if man.exists() else {}
    card = card_of("deepspace", man.get("selected_model", ""))
    frame = Path(man["whole_frame"])
    if not frame.is_file(): pytest.fail(f"the study's whole frame {frame} is missing: run `astronb reproduce --only deepspace`")
    r = run("annotate", frame, "--weights", card, "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(tmp_path / f"{frame.stem}.csv")
    want = pd.read_csv(RESULTS / "deepspace" / "whole_frame_detections.csv")
    assert len(got) == len(want) and np.allclose(got[["x1", "y1", "x2", "y2", "confidence"]], want[["x1", "y1", "x2", "y2", "confidence"]], atol=1e-3)
    assert got.confidence.min() >= json.loads(Path(card).read_text())["operating_point"]["conf"]


def test_the_onnx_export_of_the_starfield_model_gives_the_same_catalogue(shared_mirror, tmp_path):
    "`astronb export` of the study's detector, then `detect` with the export's card alone: the catalogue of the real test frame agrees with the eager model's."
    from astronb.runtime import catalogue_agreement
    card = card_of("starfield", "ft242")
    r = run("export", card, "--out", tmp_path / "ft242_onnx.onnx")
    assert r.returncode == 0, r.stderr[-2000:]
    exported = json.loads((tmp_path / "ft242_onnx.card.json").read_text())
    assert exported["architecture"]["runtime"] == "onnxruntime" and exported["operating_point"] == json.loads(Path(card).read_text())["operating_point"]
    frame = shared_mirror / "wfsat" / "244.fits"
    for w, out in ((card, "torch.csv"), (tmp_path / "ft242_onnx.card.json", "onnx.csv")):
        r = run("detect", frame, "--weights", w, "--out", tmp_path / out)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    agr = catalogue_agreement(a, b)
    assert agr["fraction"] >= 0.99, agr
    truth = read_truth_list(shared_mirror / "wfsat" / "244.list")
    assert abs(sf.score_frame(a, truth)["f1"] - sf.score_frame(b, truth)["f1"]) <= 0.01


def test_the_onnx_export_of_the_yolo_model_annotates_the_same(tmp_path):
    "`astronb export` of the deepspace model (Ultralytics' exporter), then `annotate` with the export's card: the whole-frame boxes agree."
    from astronb.runtime import catalogue_agreement
    man = RESULTS / "deepspace" / "manifest.json"
    man = json.loads(man.read_text()) if man.exists() else {}
    card = card_of("deepspace", man.get("selected_model", ""))
    r = run("export", card, "--out", tmp_path / "yolo_onnx.onnx")
    assert r.returncode == 0, r.stderr[-2000:]
    frame = Path(man["whole_frame"])
    r = run("annotate", frame, "--weights", tmp_path / "yolo_onnx.card.json", "--out", tmp_path / "ann")
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(tmp_path / "ann" / f"{frame.stem}.csv")
    want = pd.read_csv(RESULTS / "deepspace" / "whole_frame_detections.csv")
    cat = lambda d: pd.DataFrame(dict(x=d.x_center, y=d.y_center, cls=d.class_id))
    agr = catalogue_agreement(cat(want), cat(got))
    assert len(want) > 0 and agr["fraction"] >= 0.99, agr
