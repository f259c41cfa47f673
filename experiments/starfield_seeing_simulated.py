"""The shipped starfield detector against the SExtractor binary on simulated frames of fixed seeing, sharper and worse
than the real frames' 2.8 px (README, "Tried on the folds", worse seeing). The real truth lists exist only at the
seeing their frames were taken in; the study's simulator, calibrated on those frames as the study calibrates it
(`starfield.calibrate`), with its seeing FWHM fixed, gives frames of any seeing with an exact truth list.

    python experiments/starfield_seeing_simulated.py [CARD] --fwhm 1.2 1.6 2.0 2.8 4.0 5.6 --frames 4

CARD: a starfield model card (default: the manifest's `models.default`, the shipped model), run with its own views and
cut. Prints, per seeing FWHM and match radius, the measured FWHM (`starfield.frame_seeing`), the mean F1 of the
network and of SExtractor, and their ratio's mean, minimum and maximum over the frames. About 2 minutes on 2 CPU cores;
needs the data mirror (`ASTRONB_DATA_MIRROR`) and the `source-extractor` binary.
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from astronb import starfield as sf
from astronb.cards import read_card
from astronb.data import default_mirror, fetch
from astronb.io import read_fits_image, read_truth_list

ROOT = Path(__file__).resolve().parent.parent
RADII = (1.5, 4.0)


def calibrated():
    "The study's simulator configuration: calibrated on the two real frames and their truth lists."
    wf = fetch("wfsat", mirror=default_mirror(), progress=False).files
    frames = [read_fits_image(wf[f"{n}.fits"])[0] for n in (242, 244)]
    return sf.calibrate(frames, [read_truth_list(wf[f"{n}.list"]) for n in (242, 244)])[0]


def frame_rows(model, op: dict, cfg, fwhm: float, seed: int) -> list:
    "F1 of the network and of SExtractor on one simulated frame of seeing `fwhm`, at each radius."
    img, truth, _ = sf.simulate_frame(replace(cfg, fwhm=(fwhm, fwhm)), seed=seed)
    net = sf.detect_frame(model, img, "asinh", op["score_min"], views=op.get("views", 1))
    sex, seen = sf.sextractor_on_image(img), sf.frame_seeing(img)
    rows = []
    for r in RADII:
        f1 = {m: sf.score_frame(c, truth, r)["f1"] for m, c in (("network", net), ("sextractor", sex))}
        rows.append(dict(fwhm=fwhm, measured=seen, radius=r, **f1))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("card", nargs="?", help="a starfield model card (default: the shipped model)")
    ap.add_argument("--fwhm", nargs="+", type=float, default=[1.2, 1.6, 2.0, 2.8, 4.0, 5.6])
    ap.add_argument("--frames", type=int, default=4, help="simulated frames per seeing (default: 4)")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    man = json.loads((ROOT / "results" / "starfield" / "manifest.json").read_text())
    card, weights = read_card(a.card or ROOT / man["models"]["default"])
    model, cfg = sf.load_detector(weights), calibrated()
    rows = [
        r for f in a.fwhm for s in range(a.frames) for r in frame_rows(model, card["operating_point"], cfg, f, 9000 + s)
    ]
    df = pd.DataFrame(rows).assign(ratio=lambda t: t.network / t.sextractor)
    out = df.groupby(["fwhm", "radius"]).agg(
        measured=("measured", "mean"),
        network=("network", "mean"),
        sextractor=("sextractor", "mean"),
        ratio=("ratio", "mean"),
        ratio_min=("ratio", "min"),
        ratio_max=("ratio", "max"),
    )
    print(out.round(3).to_string())


if __name__ == "__main__":
    main()
