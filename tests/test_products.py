"""The studies' saved models, used through the CLI with nothing but their card, reproduce the studies' test numbers.

These tests need the models of a reproduce run (`astronb reproduce`, which writes them under build/): without them
they skip, unless ASTRONB_REQUIRE_PRODUCTS=1 (set by .ci/run after its smoke reproduction), where a missing model is
a failure."""

import json
import os
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from astronb.io import read_truth_list
from astronb import asteroids as ast
from astronb import starfield as sf

from conftest import astronb as run

RESULTS = Path(__file__).resolve().parent.parent / "results"  # the checkout's own results, not the isolated test folder


def card_of(study, key):
    man = RESULTS / study / "manifest.json"
    card = Path(json.loads(man.read_text()).get("models", {}).get(key, "")) if man.exists() else None
    if card is not None and not card.is_absolute():
        card = RESULTS.parent / card  # manifests name models relative to the project
    if card is None or not card.is_file():
        if os.environ.get("ASTRONB_REQUIRE_PRODUCTS") == "1":
            pytest.fail(f"{study}: model '{key}' of the last reproduce run is missing ({card})")
        pytest.skip(f"no saved {study} model from a reproduce run here (run `astronb reproduce --only {study}` first)")
    return card


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


def test_detect_by_default_runs_the_shipped_model_and_reproduces_its_row(tmp_path):
    """`astronb detect` without --weights runs the starfield study's default model (fine-tuned on both real frames),
    with its card's test-time views and score cut: on the study's simulated test frames it gives the `ftboth` row of
    the shipped-model table."""
    card = card_of("starfield", "default")
    assert card == card_of("starfield", "ftboth")
    row = pd.read_csv(RESULTS / "starfield" / "shipped_model.csv").set_index("model").loc["ftboth"]
    frames = sorted((card.parent.parent / "frames").glob("sim_test_*.fits"))
    n_test = json.loads((RESULTS / "starfield" / "manifest.json").read_text())["params"]["n_test_frames"]
    assert len(frames) == n_test, frames
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "ASTRONB_RESULTS": str(RESULTS)}  # the checkout's manifest
    r = run("detect", *frames, "--out", tmp_path / "c.ecsv", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    got = Table.read(tmp_path / "c.ecsv")
    assert Path(got.meta["weights"]).resolve() == card.resolve()  # the default is the manifest's card
    assert got.meta["views"] == json.loads(card.read_text())["operating_point"].get("views", 1) == row.views
    got = got.to_pandas()
    s = [sf.score_frame(got[got.frame == f.name], read_truth_list(f.with_suffix(".list"))) for f in frames]
    assert (sum(v["n_det"] for v in s), sum(v["matched"] for v in s)) == (row.n_det, row.matched)


def test_the_shipped_detector_does_not_depend_on_the_frame_units(shared_mirror, tmp_path):
    """Another camera's frame differs by a gain and a sky level. The shipped default's catalogue of a real frame is the
    same after the frame is multiplied by 3 and 500 ADU are added: the network sees the frame in units of its own
    background and noise, so nothing it does leans on the development frames' absolute levels."""
    from astropy.io import fits
    from astronb.io import read_fits_image
    from astronb.runtime import catalogue_agreement

    card = card_of("starfield", "default")
    frame = shared_mirror / "wfsat" / "242.fits"
    fits.writeto(tmp_path / "scaled.fits", (3 * read_fits_image(frame)[0] + 500).astype(np.float32))
    cats = []
    for f in (frame, tmp_path / "scaled.fits"):
        r = run("detect", f, "--weights", card, "--out", tmp_path / f"{f.stem}.csv")
        assert r.returncode == 0, r.stderr[-2000:]
        cats.append(pd.read_csv(tmp_path / f"{f.stem}.csv"))
    agr = catalogue_agreement(*cats)  # the same source within 0.5 px and the same class, over the larger catalogue
    assert len(cats[0]) > 100 and abs(len(cats[0]) - len(cats[1])) <= 1 and agr["fraction"] >= 0.99, agr


def test_detect_with_fewer_views_runs_at_the_card_s_cut_for_them(shared_mirror, tmp_path):
    """The study chooses the shipped model's cut for 1, 4 and 8 test-time views on its fine-tuning frames, by the same
    rule; `detect --views N` then runs at the cut for N views, with no note asking for --score-min."""
    card = card_of("starfield", "default")
    cuts = json.loads(card.read_text())["operating_point"]["score_min_by_views"]
    assert set(cuts) == {"1", "4", "8"} and all(0 < c < 1 for c in cuts.values())
    for v in (1, 4):
        out = tmp_path / f"v{v}.ecsv"
        r = run("detect", shared_mirror / "wfsat" / "242.fits", "--weights", card, "--views", v, "--out", out)
        assert r.returncode == 0 and "note:" not in r.stderr, r.stderr[-2000:]
        meta = Table.read(out).meta
        assert (meta["views"], meta["score_min"]) == (v, cuts[str(v)])


def test_detect_hands_a_frame_of_worse_seeing_than_its_card_was_checked_in_to_sextractor(shared_mirror, tmp_path):
    """The shipped card says in what seeing it was checked (its fine-tuning frames' FWHM, and `SEEING_CHECKED` (1.8)
    times the worst of them, as far as the study measured its margin over SExtractor). `detect` measures each frame's
    seeing and keeps it in the catalogue's provenance. On the frame in 2x worse seeing (`extract.worse_seeing`; its
    measured FWHM 2.3x), where the study's fold models fell to 0.78 of SExtractor's F1 (1.05 at the cut chosen in that
    seeing: level), it warns, naming the frame, and by default that frame's
    sources are SExtractor's (`--fallback`), as `--baseline sextractor` gives them, the frame's `method` saying so;
    the real frame itself passes without a word, from the network. `--fallback none` keeps the network there."""
    from astropy.io import fits
    from astronb.extract import worse_seeing
    from astronb.io import read_fits_image

    card = card_of("starfield", "default")
    dom = json.loads(card.read_text())["domain"]
    assert dom["seeing_fwhm_px"][0] > 2.5 and np.isclose(
        dom["seeing_fwhm_px_max"], sf.SEEING_CHECKED * dom["seeing_fwhm_px"][1], atol=0.01
    )
    frame, worse = shared_mirror / "wfsat" / "242.fits", tmp_path / "blurred.fits"
    fits.writeto(worse, worse_seeing(read_fits_image(frame)[0], 2.0).astype(np.float32))
    said = {}
    for fallback in ("auto", "none"):
        out = tmp_path / f"{fallback}.ecsv"
        r = run("detect", frame, worse, "--weights", card, "--fallback", fallback, "--out", out)
        assert r.returncode == 0, r.stderr[-2000:]
        said[fallback] = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
        assert len(said[fallback]) == 1 and said[fallback][0].startswith("warning: blurred.fits: seeing FWHM")
        assert "astronb train starfield --weights" in said[fallback][0], r.stderr[-2000:]
    assert "extracted with SExtractor instead" in said["auto"][0] and "--baseline sextractor" in said["none"][0]
    t = Table.read(tmp_path / "auto.ecsv")
    seen = {Path(f["path"]).name: f for f in t.meta["frames"]}
    assert seen["242.fits"]["seeing_fwhm_px"] < dom["seeing_fwhm_px_max"] and "warning" not in seen["242.fits"]
    assert seen["blurred.fits"]["seeing_fwhm_px"] > dom["seeing_fwhm_px_max"] and "method" not in seen["242.fits"]
    assert seen["blurred.fits"]["method"] == t.meta["fallback"]["method"] == "sextractor"
    r = run("detect", worse, "--baseline", "sextractor", "--out", tmp_path / "sex.ecsv")
    assert r.returncode == 0, r.stderr[-2000:]
    got, want = t.to_pandas(), Table.read(tmp_path / "sex.ecsv").to_pandas()
    cols = ["x", "y", "flux"]
    assert (
        np.allclose(got[got.frame == "blurred.fits"][cols], want[cols])
        and got[got.frame == "blurred.fits"].score.isna().all()
    )
    none = Table.read(tmp_path / "none.ecsv").to_pandas()  # the network on both frames
    assert (none.frame == "blurred.fits").any() and none.score.notna().all()
    assert np.array_equal(none[none.frame == "242.fits"][cols], got[got.frame == "242.fits"][cols])


def test_detect_cuts_a_frame_of_worse_seeing_at_the_card_s_cut_for_that_seeing(shared_mirror, tmp_path):
    """Worse seeing lowers the network's scores, so the shipped card also carries the cut chosen on its fine-tuning
    frames made 1.3, 1.6 and 2 times worse (`operating_point.score_min_by_seeing`). `detect` measures each frame's
    seeing and cuts it at the row nearest: real frame 242 at the card's own cut, 242 in 1.6x worse seeing (measured
    about 5.0 px, inside the checked seeing) at the 1.6x row's, which is lower, each frame's cut in the catalogue's
    provenance; that frame's catalogue is the one `--score-min` at that cut gives. A --score-min of the user's rules
    every frame."""
    from astropy.io import fits
    from astronb.extract import worse_seeing
    from astronb.io import read_fits_image

    card = card_of("starfield", "default")
    op = json.loads(card.read_text())["operating_point"]
    rows = {r["factor"]: r for r in op["score_min_by_seeing"]}
    views = str(op["views"])
    assert list(rows) == [1.0, *sf.SEEING_CUT_FACTORS] and rows[1.0]["score_min_by_views"] == op["score_min_by_views"]
    assert rows[1.6]["score_min_by_views"][views] < rows[1.0]["score_min_by_views"][views]
    frame, worse = shared_mirror / "wfsat" / "242.fits", tmp_path / "worse.fits"
    fits.writeto(worse, worse_seeing(read_fits_image(frame)[0], 1.6).astype(np.float32))
    r = run("detect", frame, worse, "--out", tmp_path / "c.ecsv", "--weights", card)
    assert r.returncode == 0 and "warning:" not in r.stderr, r.stderr[-2000:]
    t = Table.read(tmp_path / "c.ecsv")
    seen = {Path(f["path"]).name: f for f in t.meta["frames"]}
    assert t.meta["score_min_by_seeing"] and "method" not in seen["worse.fits"]  # the network, at each frame's cut
    assert seen["242.fits"]["score_min"] == rows[1.0]["score_min_by_views"][views]
    assert seen["worse.fits"]["score_min"] == rows[1.6]["score_min_by_views"][views]
    got = t.to_pandas()
    got = got[got.frame == "worse.fits"].reset_index(drop=True)
    cut = rows[1.6]["score_min_by_views"][views]
    r = run("detect", worse, "--weights", card, "--score-min", cut, "--out", tmp_path / "fixed.ecsv")
    assert r.returncode == 0, r.stderr[-2000:]
    fixed = Table.read(tmp_path / "fixed.ecsv")
    assert not fixed.meta["score_min_by_seeing"] and "score_min" not in fixed.meta["frames"][0]
    cols = ["x", "y", "score"]
    assert np.array_equal(got[cols].to_numpy(), fixed.to_pandas()[cols].to_numpy()) and got.score.min() >= cut


def test_fine_tuning_with_train_remakes_the_study_s_fold_model(shared_mirror, tmp_path):
    """A user fine-tunes the study's simulated-only detector on a labelled frame of theirs with `astronb train
    starfield --weights CARD`, the steps, learning rate (lr / 4), crop and batch read from the card: on real frame 242
    with the study's seed this is fold A's fine-tuning, so the weights are the fold model's to the bit, and the score
    cuts chosen on the frame within 4 px (the study's radius for these lists), for 8 views and for 1 and 4, are the fold
    model's; its cuts by seeing start from them."""
    sim, fold = card_of("starfield", "sim"), card_of("starfield", "ft242")
    seed = json.loads(sim.read_text())["params"]["seed"]
    frame, out = shared_mirror / "wfsat" / "242.fits", tmp_path / "ft.pt"
    r = run("train", "starfield", "--weights", sim, "--frames", frame, "--radius", 4, "--seed", seed, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    got, want = json.loads((tmp_path / "ft.card.json").read_text()), json.loads(fold.read_text())
    assert sf.parameters_digest(sf.load_detector(out)) == sf.parameters_digest(
        sf.load_detector(fold.with_name(want["weights"]))
    )
    keys = ("score_min", "views", "score_min_by_views")
    assert [got["operating_point"][k] for k in keys] == [want["operating_point"][k] for k in keys]
    assert got["fine_tuned_from"]["weights_sha256"] == json.loads(sim.read_text())["weights_sha256"]
    by_seeing = got["operating_point"]["score_min_by_seeing"]  # the same rule on copies of the frame 1.3-2x worse
    assert [r["factor"] for r in by_seeing] == [1.0, *sf.SEEING_CUT_FACTORS]
    assert by_seeing[0]["score_min_by_views"] == want["operating_point"]["score_min_by_views"]
    assert by_seeing[0]["seeing_fwhm_px"] == want["domain"]["seeing_fwhm_px"][1] < by_seeing[1]["seeing_fwhm_px"]


def classify_the_test_alerts(shared_mirror, tmp_path, key):
    """(card, the study's test scores of model `key`, what `astronb classify` with the card alone writes for those
    alerts)."""
    card = card_of("asteroids", key)
    test = pd.read_csv(RESULTS / "asteroids" / "ztf_test_scores.csv")
    test = test[test.model == key]
    files = sorted({shared_mirror / f / s for f, s in zip(test.folder, test.source)})
    r = run("classify", *files, "--weights", card, "--out", tmp_path / "s.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    return card, test, pd.read_csv(tmp_path / "s.csv", keep_default_na=False)


@pytest.mark.parametrize("key", ["stamps_cnn", "alert_features", "stamps_and_features"])
def test_classify_with_the_card_reproduces_the_test_alerts(shared_mirror, tmp_path, key):
    """Each of the asteroid study's three models (a)-(c), through `classify` and its card alone, gives the study's
    test scores and rows."""
    card, test, out = classify_the_test_alerts(shared_mirror, tmp_path, key)
    got = test.merge(out[["candid", "score", "asteroid"]], on="candid", suffixes=("", "_cli"))
    assert len(got) == len(test) > 0
    assert (got.asteroid == got.asteroid_cli).all() and np.allclose(got.score, got.score_cli, atol=1e-5)
    res = pd.read_csv(RESULTS / "asteroids" / "ztf_results.csv")
    c = json.loads(Path(card).read_text())
    row = res[
        (res.variant.str.split(": ", n=1).str[1] == c["variant"])
        & (res.threshold_rule != "0.5")
        & (res.test_alerts_used == "cross-match valid")
    ]
    assert len(row) == 1
    v = got[got.crossmatch_valid]
    assert (
        int((v.asteroid_cli & (v.label == 1)).sum()) == row.found.iloc[0]
        and int(v.asteroid_cli.sum()) == row.flagged.iloc[0]
    )


def test_the_study_model_is_the_one_chosen_on_validation():
    """models.asteroids is the one card marked as the study's model, and it is the shippable row of ztf_regimes with the
    highest pooled validation precision (recall breaks ties); none of the three ungated models is marked."""
    keys = ("history_rule", "physical_gate", "gated_trees", "stamps_cnn", "alert_features", "stamps_and_features")
    cards = {k: json.loads(card_of("asteroids", k).read_text()) for k in ("asteroids", *keys)}
    assert cards["asteroids"]["study_model"] and sum(cards[k]["study_model"] for k in keys) == 1
    reg = pd.read_csv(RESULTS / "asteroids" / "ztf_regimes.csv")
    pooled = reg[(reg.alerts_used == "validation") & (reg.regime == "pooled")].set_index("model")
    best = max(
        keys[:3], key=lambda k: (pooled.loc[cards[k]["role"], "precision"], pooled.loc[cards[k]["role"], "recall"])
    )
    assert cards[best]["study_model"] and cards["asteroids"]["role"] == cards[best]["role"]
    assert reg[reg.shipped].model.unique().tolist() == [cards[best]["role"]]


@pytest.mark.parametrize("key", ["history_rule", "physical_gate", "gated_trees"])
def test_classify_with_a_gated_card_reproduces_the_regime_table(shared_mirror, tmp_path, key):
    """The rules and the gated trees, through `classify` and their card alone, give the study's test scores and the test
    rows of ztf_regimes in both regimes; the output names each alert's regime and, where the gate decided, why."""
    card, test, out = classify_the_test_alerts(shared_mirror, tmp_path, key)
    got = test.merge(out[["candid", "score", "asteroid", "regime", "reason"]], on="candid", suffixes=("", "_cli"))
    assert len(got) == len(test) > 0
    assert (got.asteroid == got.asteroid_cli).all() and np.allclose(got.score, got.score_cli.astype(float), atol=1e-6)
    assert set(got.regime) <= {"history", "first detection"} and (got[got.regime == "history"].reason != "").all()
    assert (got[got.reason != ""].asteroid_cli == 0).all()
    reg = pd.read_csv(RESULTS / "asteroids" / "ztf_regimes.csv")
    c = json.loads(Path(card).read_text())
    v = got[got.crossmatch_valid]
    for regime, sub in (
        ("history", v[v.regime == "history"]),
        ("first detection", v[v.regime == "first detection"]),
        ("pooled", v),
    ):
        row = reg[(reg.model == c["role"]) & (reg.alerts_used == "test") & (reg.regime == regime)].iloc[0]
        assert (int((sub.asteroid_cli & (sub.label == 1)).sum()), int(sub.asteroid_cli.sum())) == (
            row.found,
            row.flagged,
        )


def _shipped_on_dev_alerts(shared_mirror):
    "The shipped card loaded as `classify` loads it, and the valid development alerts as a cutout set."
    from astronb.data import fetch

    clf = ast.load_classifier(card_of("asteroids", "asteroids"))
    files = [
        p
        for name in ("ztf-alerts", "ztf-alerts-extra")
        for p in fetch(name, mirror=shared_mirror, progress=False).files.values()
        if str(p).endswith((".avro", ".parquet"))
    ]
    cs, _ = ast.ztf_cutouts(
        sorted(files), channels=ast.ZTF_CHANNELS if clf["channels"] == 3 else ("science",), report=lambda s: None
    )
    cs = cs.subset(np.flatnonzero(cs.index.crossmatch_valid.to_numpy(bool) & ~cs.index.candid.duplicated().to_numpy()))
    return clf, cs


def test_the_shipped_model_learned_no_neighbour_shortcut(shared_mirror):
    """Real non-asteroids with a history, their PS1 neighbour taken away or moved 3 arcsec off as a galaxy: >= 95% stay
    non-asteroids. Real asteroids moved 60 degrees off the ecliptic never gain score."""
    from astronb import regimes as rg

    clf, cs = _shipped_on_dev_alerts(shared_mirror)
    base = ast.score_table(clf, cs)
    hist = np.flatnonzero((base.regime == "history").to_numpy() & (cs.y == 0))
    assert len(hist) > 100
    for kind in ("no neighbour", "offset galaxy"):
        moved = cs.subset(hist)
        moved.index = rg.counterfactual(moved.index, kind)
        kept = 1 - ast.score_table(clf, moved).asteroid.mean()
        assert kept >= 0.95, f"{kind}: only {kept:.2%} of the non-asteroids with a history stay non-asteroids"
    ast_rows = np.flatnonzero(cs.y == 1)
    moved = cs.subset(ast_rows)
    moved.index = rg.counterfactual(moved.index, "off the ecliptic")
    after = ast.score_table(clf, moved).score.to_numpy()
    assert (after <= base.score.to_numpy()[ast_rows] + 1e-12).all(), "an asteroid gained score far from the ecliptic"


def test_the_shipped_score_never_rises_with_detection_history(shared_mirror):
    """Every real alert, given more and longer history at its position, never scores higher (the card's gate and
    monotone model)."""
    clf, cs = _shipped_on_dev_alerts(shared_mirror)
    prev = ast.score_table(clf, cs).score.to_numpy()
    for n, days in ((2, 0.005), (3, 0.5), (10, 30.0), (500, 2000.0)):
        more = cs.subset(np.arange(len(cs)))
        more.index["feat_ndethist"] = np.maximum(more.index.feat_ndethist, n)
        more.index["feat_days_since_first"] = np.maximum(more.index.feat_days_since_first, days)
        now = ast.score_table(clf, more).score.to_numpy()
        assert (now <= prev + 1e-12).all(), f"the score rose with history (ndethist {n}, {days} d)"
        prev = now
    assert (prev == 0).all(), "an alert seen at its position for years is never an asteroid"


def test_annotate_with_the_card_reproduces_the_whole_frame(tmp_path):
    man = RESULTS / "deepspace" / "manifest.json"
    man = json.loads(man.read_text()) if man.exists() else {}
    card = card_of("deepspace", man.get("selected_model", ""))
    frame = Path(man["whole_frame"])
    if not frame.is_file():
        pytest.fail(f"the study's whole frame {frame} is missing: run `astronb reproduce --only deepspace`")
    r = run("annotate", frame, "--weights", card, "--out", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(tmp_path / f"{frame.stem}.csv")
    want = pd.read_csv(RESULTS / "deepspace" / "whole_frame_detections.csv")
    assert len(got) == len(want) and np.allclose(
        got[["x1", "y1", "x2", "y2", "confidence"]], want[["x1", "y1", "x2", "y2", "confidence"]], atol=1e-3
    )
    assert got.confidence.min() >= json.loads(Path(card).read_text())["operating_point"]["conf"]


def test_the_onnx_export_of_the_starfield_model_gives_the_same_catalogue(shared_mirror, tmp_path):
    """`astronb export` of the study's detector, then `detect` with the export's card alone: the catalogue of the
    real test frame agrees with the eager model's, and the export's card keeps the operating point (cuts per views),
    what it was fine-tuned on and the seeing it was checked in."""
    from astronb.runtime import catalogue_agreement

    card = card_of("starfield", "ft242")
    r = run("export", card, "--out", tmp_path / "ft242_onnx.onnx")
    assert r.returncode == 0, r.stderr[-2000:]
    exported, source = json.loads((tmp_path / "ft242_onnx.card.json").read_text()), json.loads(Path(card).read_text())
    assert (
        exported["architecture"]["runtime"] == "onnxruntime"
        and exported["operating_point"] == source["operating_point"]
    )
    assert exported["domain"] == source["domain"] and exported["fine_tuned_on"] == source["fine_tuned_on"]
    frame = shared_mirror / "wfsat" / "244.fits"
    for w, out in ((card, "torch.csv"), (tmp_path / "ft242_onnx.card.json", "onnx.csv")):
        r = run("detect", frame, "--weights", w, "--out", tmp_path / out)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    agr = catalogue_agreement(a, b)
    assert agr["fraction"] >= 0.99, agr
    truth = read_truth_list(shared_mirror / "wfsat" / "244.list")
    assert abs(sf.score_frame(a, truth)["f1"] - sf.score_frame(b, truth)["f1"]) <= 0.01


def test_the_int8_export_of_the_starfield_model_is_refused_below_the_bar_and_close_to_float_above_it(
    shared_mirror, tmp_path
):
    """`astronb export --int8`: refused, leaving no file, under the default 99% agreement bar when the model does not
    reach it; written with a lower bar, and then `detect` with its card alone finds nearly the float model's
    catalogue of the real test frame."""
    from astronb.runtime import catalogue_agreement

    card = card_of("starfield", "ft242")
    r = run("export", card, "--int8", "--out", tmp_path / "q.onnx", "--min-agreement", "0.9")
    assert r.returncode == 0, r.stderr[-2000:]
    q = json.loads((tmp_path / "q.card.json").read_text())["architecture"]
    assert q["precision"] == "int8" and q["runtime"] == "openvino" and 0.9 <= q["agreement_with_float"]["fraction"] <= 1
    if q["agreement_with_float"]["fraction"] < 0.99:  # the same check frames: the default bar refuses it
        r = run("export", card, "--int8", "--out", tmp_path / "refused.onnx")
        assert r.returncode != 0 and "not written" in r.stderr and not (tmp_path / "refused.onnx").exists()
    frame = shared_mirror / "wfsat" / "244.fits"
    for w, out in ((card, "torch.csv"), (tmp_path / "q.card.json", "int8.csv")):
        r = run("detect", frame, "--weights", w, "--out", tmp_path / out)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "int8.csv")
    assert catalogue_agreement(a, b)["fraction"] >= 0.9
    truth = read_truth_list(shared_mirror / "wfsat" / "244.list")
    assert abs(sf.score_frame(a, truth)["f1"] - sf.score_frame(b, truth)["f1"]) <= 0.03


def test_the_onnx_export_of_the_yolo_model_annotates_the_same(tmp_path):
    """`astronb export` of the deepspace model (Ultralytics' exporter), then `annotate` with the export's card: the
    whole-frame boxes agree."""
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

    def cat(d):
        return pd.DataFrame(dict(x=d.x_center, y=d.y_center, cls=d.class_id))

    agr = catalogue_agreement(cat(want), cat(got))
    assert len(want) > 0 and agr["fraction"] >= 0.99, agr
