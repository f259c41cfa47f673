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
