"""The pieces of experiments/starfield_folds.py that are its own (the rest is the study's library): moving list
entries onto a catalogue's centroids, finding the list entries at the edge, one-to-one matches, and a folder without
fold models."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "starfield_folds.py"
spec = importlib.util.spec_from_file_location("starfield_folds", SCRIPT)
folds = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = folds  # dataclasses look their module up while the script loads
spec.loader.exec_module(folds)


def test_snapped_is_one_to_one():
    truth = pd.DataFrame(dict(x=[10.0, 11.0, 40.0], y=[10.0, 10.0, 40.0], code=100))
    cat = pd.DataFrame(dict(x=[10.6, 60.0], y=[10.2, 60.0]))
    s = folds.snapped(truth, cat, 2.0)
    moved = (s[["x", "y"]].to_numpy() != truth[["x", "y"]].to_numpy()).any(axis=1)
    assert moved.sum() == 1 and np.allclose(s.loc[moved, ["x", "y"]], [[10.6, 10.2]])
    assert np.allclose(s.x0, s.x - 1) and s.y[2] == 40.0  # nothing within 2 px of (40, 40): left where it was


def test_a_folder_without_fold_models_is_named(tmp_path):
    try:
        folds.Seed(tmp_path)
    except SystemExit as e:
        assert str(tmp_path) in str(e) and "ft242" in str(e) and "build/starfield" in str(e)
    else:
        raise AssertionError("a folder with no fold models must be refused")


def test_at_edge_measures_from_the_centre_in_continuous_pixels():
    truth = pd.DataFrame(dict(x=[5.4, 5.6, 250.0, 496.0, 250.0], y=[250.0, 250.0, 250.0, 250.0, 495.4], code=100))
    # 1-based 5.4 is 4.9 px from the edge, 5.6 is 5.1; 496.0 is 4.5 px from the far edge, 495.4 is 5.1
    assert folds.at_edge(truth, (500, 500)).tolist() == [True, False, False, True, False]


def test_found_is_one_to_one():
    truth = pd.DataFrame(dict(x=[10.0, 11.0, 40.0], y=[10.0, 10.0, 40.0]))  # two entries 1 px apart, one detection
    det = pd.DataFrame(dict(x=[10.6], y=[10.0]))
    f = folds.found(det, truth, 1.5)
    assert f.sum() == 1 and not f[2]


def test_worse_seeing_widens_the_psf_and_keeps_the_noise_and_the_positions(shared_mirror):
    from astronb import starfield as sf

    wfsat = shared_mirror / "wfsat"
    img, truth = folds.read_fits_image(wfsat / "242.fits")[0], folds.read_truth_list(wfsat / "242.list")
    worse = folds.worse_seeing(img, 1.5)
    before, after = sf.frame_stats(img), sf.frame_stats(worse)
    assert 1.3 < after["fwhm_px"] / before["fwhm_px"] < 1.7
    assert abs(after["background_rms"] / before["background_rms"] - 1) < 0.01  # the noise brought back
    near = {}
    for name, frame in (("before", img), ("after", worse)):
        det = sf.detect_sep(frame)
        m = folds.match_points(folds.xy(det), folds.xy(truth), 2.0)
        near[name] = np.median(folds.xy(det)[m[:, 0]] - folds.xy(truth)[m[:, 1]], axis=0)
    assert np.all(np.abs(near["after"] - near["before"]) < 0.2)  # the sources stay where they were


def test_ratios_take_the_changed_frames_own_sextractor_catalogue():
    truth = pd.DataFrame(dict(x=[10.0, 30.0, 50.0, 70.0], y=[10.0, 30.0, 50.0, 70.0], code=100))
    half, all_ = truth.iloc[:2], truth
    real = folds.Real({242: None}, {242: truth}, {242: half}, {242: half})
    assert np.allclose(folds.ratios(real, all_, 242), 1.5)  # F1 1 against the frame's own SExtractor's 2/3
    assert np.allclose(folds.ratios(real, (all_, all_), 242), 1.0)  # against the changed frame's catalogue


def _psf_moments(img, det) -> np.ndarray:
    "Second moments (xx, yy) of the summed background-subtracted stamps of the 20 brightest unsaturated sources."
    keep = det[(det.peak < 30000) & det.x.between(10, img.shape[1] - 11) & det.y.between(10, img.shape[0] - 11)]
    yy, xx = np.mgrid[-6:7, -6:7]
    stack = sum(
        img[int(round(r.y0)) - 6 : int(round(r.y0)) + 7, int(round(r.x0)) - 6 : int(round(r.x0)) + 7]
        for r in keep.nlargest(20, "flux").itertuples()
    )
    stack = np.clip(stack - np.median(stack), 0, None) * (xx**2 + yy**2 <= 36)
    return np.array([(stack * xx**2).sum(), (stack * yy**2).sum()]) / stack.sum()


def test_smeared_stretches_the_psf_along_its_angle_only_and_keeps_the_noise(shared_mirror):
    from astronb import starfield as sf

    img = folds.read_fits_image(shared_mirror / "wfsat" / "242.fits")[0]
    det = sf.detect_sep(img)
    smeared = folds.smeared(img, 1.6, 0)
    grow = _psf_moments(smeared, det) - _psf_moments(img, det)
    assert grow[0] > 1.0 and abs(grow[1]) < 0.25 * grow[0]  # wider along x (angle 0), about as wide along y
    assert abs(sf.detect_sep(smeared).attrs["rms"] / det.attrs["rms"] - 1) < 0.01  # the noise brought back
