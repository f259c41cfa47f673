"""The fold models, sep and the SExtractor binary on the folds' test frames in worse seeing (README, "Tried on the
folds", worse seeing): F1 of each, and the network's ratio to each classical extractor, mean over folds and seeds.
This is what `astronb detect --fallback` rests on: beyond the seeing a card was checked in, either extractor does
better than the network.

    python experiments/starfield_seeing_baselines.py build/starfield/<run>/sim_<sim>/models ...

Each fold model runs with 8 test-time views at the folds' cut (`starfield_folds.fold_cut`); the frames are made worse
by `astronb.extract.worse_seeing`, as `starfield_folds.py --variants seeing` makes them. About a minute per seed on 2
CPU cores; needs the data mirror (`ASTRONB_DATA_MIRROR`) and the `source-extractor` binary.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import starfield_folds as folds  # noqa: E402

from astronb import starfield as sf  # noqa: E402

FACTORS = (1.0, 1.6, 2.0, 2.5)  # the test frames' seeing made this many times worse (1: as it is)


def fold_rows(real, seed, ft: int) -> list:
    "F1 of the fold model, SExtractor and sep on the fold's test frame in each seeing of `FACTORS`, at each radius."
    test, model = folds.test_frame(ft), seed.model(f"ft{ft}")
    cut = folds.fold_cut(real, model, ft, folds.VIEWS)
    rows = []
    for k in FACTORS:
        img, sex = real.in_seeing(test, k)
        cats = dict(network=sf.detect_frame(model, img, "asinh", cut, views=folds.VIEWS), sextractor=sex)
        cats["sep"] = sf.detect_sep(img)
        for r in folds.RADII:
            f1 = {m: folds.f1(c, real.truth[test], r) for m, c in cats.items()}
            rows.append(dict(seed=str(seed.models), fold=ft, seeing=k, radius=r, **f1))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="a fold-models folder per training seed")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    real = folds.Real.load()
    df = pd.DataFrame([r for m in a.models for ft in folds.FRAMES for r in fold_rows(real, folds.Seed(m), ft)])
    df["network / SExtractor"] = df.network / df.sextractor
    df["network / sep"] = df.network / df.sep
    cols = ["network", "sextractor", "sep", "network / SExtractor", "network / sep"]
    print(df.groupby(["seeing", "radius"])[cols].mean().round(3).to_string())


if __name__ == "__main__":
    main()
