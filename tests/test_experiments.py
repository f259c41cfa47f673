"""The pieces of experiments/starfield_folds.py that are its own (the rest is the study's library): merging several
models' detections, moving list entries onto a catalogue's centroids, finding the list entries at the edge, and
moving detections on a flipped or turned frame back."""

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


def test_merged_means_over_every_model():
    a = pd.DataFrame(dict(x=[10.0, 50.0], y=[10.0, 50.0], score=[0.9, 0.6]))
    b = pd.DataFrame(dict(x=[11.0, 90.0], y=[10.0, 90.0], score=[0.7, 0.8]))
    c = pd.DataFrame(dict(x=[10.5], y=[12.0], score=[0.5]))  # 2 px from the first cluster's mean: a cluster of its own
    m = folds.merged([a, b, c]).sort_values("x").reset_index(drop=True)
    assert len(m) == 4
    assert np.isclose(m.x[0], 10.5) and np.isclose(m.score[0], (0.9 + 0.7) / 3)  # c missed it: counts as 0
    assert np.isclose(m.score[1], 0.5 / 3) and np.isclose(m.score[3], 0.8 / 3)


def test_merged_takes_one_detection_per_model():
    a = pd.DataFrame(dict(x=[10.0, 10.5], y=[10.0, 10.0], score=[0.9, 0.8]))  # two of one model's, 0.5 px apart
    assert len(folds.merged([a])) == 2


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


def test_view_back_undoes_every_view():
    img = np.zeros((7, 11))
    img[2, 8] = 1.0  # row 2, column 8: 1-based x = 9, y = 3
    for k, flip in folds.VIEWS["8 flips and rotations"]:
        v = folds.view(img, k, flip)
        row, col = np.unravel_index(np.argmax(v), v.shape)
        back = folds.view_back(pd.DataFrame(dict(x=[col + 1.0], y=[row + 1.0])), img.shape, k, flip)
        assert (back.x[0], back.y[0]) == (9.0, 3.0), (k, flip)
    assert len(set(folds.VIEWS["8 flips and rotations"])) == 8
