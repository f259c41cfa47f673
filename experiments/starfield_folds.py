"""Changes to the starfield study tried on its two folds, kept or not (README: "Tried on the folds").

Each variant starts from the fold models that `astronb reproduce --params <scale> --only starfield` leaves in
`build/starfield/<run>/sim_<sim>/models/` (one folder per training seed: `ft242_*`, `ft244_*`, `sim_*` and their
cards), changes one thing, and prints the statistic of README's list: the two-fold mean F1 ratio against the
SExtractor binary on the test frames, at the paper's 1.5 px and at the 4 px the truth lists support, per seed and
averaged over the seeds. The row "as shipped" reproduces the study's own fold scores; the "control" rows of `clean`
and `mix` rerun the study's fine-tuning and reproduce them too, and `selftrain`'s control trains as long as its
variants, so each change is read against its control.

    python experiments/starfield_folds.py build/starfield/<run>/sim_<sim>/models ... --variants shipped offset

Variants: shipped, winpos, offset, cuts, clean, mix, selftrain, steps, tta, seeing, seeingcut, seeingpick, simseeing,
smear, simshape (each seed on its own) and ensemble (the seeds together). `--edges` adds the recall of the list
entries within 5 px of the frame's edge and of the others, for the fold models, SExtractor and sep. The fine-tuning
variants take about 20 s per model on 2 CPU cores (`seeing` about 4 minutes per seed, `seeingcut` and `seeingpick`
about 1, `smear` about 4; `simseeing` and `simshape` train a simulated-only model again, about 5 minutes per seed);
the whole set about 70 minutes for three smoke seeds. Needs the data mirror (`ASTRONB_DATA_MIRROR`) and the
`source-extractor` binary.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from astronb import starfield as sf
from astronb.cards import read_card
from astronb.data import default_mirror, fetch
from astronb.extract import detect_sep, frame_stats, worse_seeing
from astronb.io import read_fits_image, read_truth_list
from astronb.metrics import match_points, with_wilson
from astronb.runtime import load_detector

FRAMES = (242, 244)
RADII = (1.5, 4.0)
GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)  # the study's score grid
SEEING = (1.3, 1.6, 2.0, 2.5)  # test frames' Gaussian-equivalent FWHM made this many times wider (`worse_seeing`)
COPIES = (1.2, 1.4, 1.7, 2.0)  # worse-seeing copies of the fine-tuning frame tried in the fine-tuning
VIEWS = 8  # the smoke study's test-time views (params/starfield/smoke.yaml), for fold models whose card predates them
SMEAR = ((1.6, 0), (1.6, 45), (1.6, 90), (1.6, 135), (2.0, 60))  # (FWHM factor along one direction, its angle, deg)
SHAPES = (0.45, 1.0)  # simulated PSF axis ratios (minor / major FWHM) tried; the real frames': 0.63 and 0.67
WIDE_SEEING = 1.8  # simulated training seeing drawn up to this many times the real frames' median FWHM (study: 1.15)


@dataclass
class Real:
    "The two labelled frames: image, truth list, and the two classical catalogues of each."

    image: dict
    truth: dict
    sextractor: dict
    sep: dict
    worse: dict = field(default_factory=dict, repr=False)  # (frame, factor) -> (image, SExtractor's catalogue)
    smear: dict = field(default_factory=dict, repr=False)  # (frame, factor, angle) -> (image, SExtractor's catalogue)

    @classmethod
    def load(cls) -> Real:
        wf = fetch("wfsat", mirror=default_mirror(), progress=False).files
        image = {n: read_fits_image(wf[f"{n}.fits"])[0] for n in FRAMES}
        truth = {n: read_truth_list(wf[f"{n}.list"]) for n in FRAMES}
        sex = {n: sf.detect_sextractor(wf[f"{n}.fits"]) for n in FRAMES}
        return cls(image, truth, sex, {n: sf.detect_sep(image[n]) for n in FRAMES})

    def in_seeing(self, n: int, factor: float) -> tuple:
        """Frame `n` in seeing `factor` times worse (`worse_seeing`) and SExtractor's catalogue of it, made once for
        every seed and variant; factor 1 is the frame as it is."""
        if factor == 1:
            return self.image[n], self.sextractor[n]
        if (n, factor) not in self.worse:
            img = worse_seeing(self.image[n], factor)
            self.worse[n, factor] = img, sf.sextractor_on_image(img)
        return self.worse[n, factor]

    def smeared(self, n: int, factor: float, angle: float) -> tuple:
        "Frame `n` through a PSF smeared along one direction (`smeared`) and SExtractor's catalogue of it, made once."
        if (n, factor, angle) not in self.smear:
            img = smeared(self.image[n], factor, angle)
            self.smear[n, factor, angle] = img, sf.sextractor_on_image(img)
        return self.smear[n, factor, angle]


def smeared(img, factor: float, angle: float, seed: int = 7) -> np.ndarray:
    """The frame through a PSF smeared along one direction (a guiding error, wind shake, the coma of a wide field's
    corners): convolved with a Gaussian along `angle` (degrees from +x) that widens the seeing FWHM `factor` times in
    that direction only (0.2 px across it, integrated over the pixels), then white noise added to bring sep's
    background RMS back to the frame's, as `worse_seeing` does for a round blur."""
    from astropy.convolution import Gaussian2DKernel
    from scipy.signal import fftconvolve

    st = frame_stats(img)
    sky, rms = st["background"], st["background_rms"]
    k = Gaussian2DKernel(np.sqrt(factor**2 - 1) * st["fwhm_px"] / 2.3548, 0.2, np.radians(angle), mode="integrate")
    x = fftconvolve(np.asarray(img, float) - sky, k.array / k.array.sum(), mode="same") + sky
    noise, var = np.random.default_rng(seed).normal(0, 1, x.shape), 0.0
    for _ in range(3):
        var = max(var + rms**2 - detect_sep(x + np.sqrt(var) * noise).attrs["rms"] ** 2, 0.0)
    return x + np.sqrt(var) * noise


@dataclass
class Seed:
    """One training seed's fold models, their cards read and checked once (`astronb.cards.read_card`: the weights'
    SHA-256 against the card's) before any model is loaded."""

    models: Path
    cards: dict = field(init=False)  # name -> (card, weights path)

    def __post_init__(self):
        found = {n: next(self.models.glob(f"{n}_*.card.json"), None) for n in ("sim", "ft242", "ft244")}
        missing = [n for n, p in found.items() if p is None]
        if missing:
            raise SystemExit(
                f"{self.models}: no {', '.join(missing)} model card here; pass the models folder of a starfield "
                "reproduce run, build/starfield/<run>/sim_<sim>/models"
            )
        self.cards = {n: read_card(p) for n, p in found.items()}

    def model(self, name: str):
        return load_detector(self.cards[name][1])

    @property
    def params(self) -> dict:
        return self.cards["ft242"][0]["params"]

    def cut(self, ft: int) -> float:
        return self.cards[f"ft{ft}"][0]["operating_point"]["score_min"]

    def views(self, ft: int) -> int:
        return self.cards[f"ft{ft}"][0]["operating_point"].get("views", 1)


def xy(d) -> np.ndarray:
    return d[["x", "y"]].to_numpy(float)


def f1(det, truth, radius: float) -> float:
    "The study's F1: one-to-one matching within `radius` px (box)."
    return sf.score_frame(det, truth, radius)["f1"]


def test_frame(ft: int) -> int:
    "The fold's test frame: the labelled frame it was not fine-tuned on."
    return FRAMES[1 - FRAMES.index(ft)]


def ratios(real: Real, det, test: int) -> tuple:
    """F1 ratio against the SExtractor binary on the test frame, at each radius; `det` is a catalogue, or a pair
    (catalogue, SExtractor's catalogue of the same changed frame) for a variant that changes the test frame."""
    det, sex = det if isinstance(det, tuple) else (det, real.sextractor[test])
    return tuple(f1(det, real.truth[test], r) / f1(sex, real.truth[test], r) for r in RADII)


def detect(real: Real, model, n: int, cut: float, views: int = 1) -> pd.DataFrame:
    return sf.detect_frame(model, real.image[n], "asinh", score_min=cut, views=views)


def fine_tuned(seed: Seed, frames: list, start: str = "sim", train_seed: int | None = None, **change):
    """The study's fine-tuning on `frames`: from `start` (the name of one of the seed's models, the simulated-only one
    by default, or a model, which is copied), with the seed's fine-tuning steps, crops and lr / 4, and the run's seed
    unless `train_seed` is given; `change` replaces any of them (`sf.CropTraining`'s fields)."""
    p = seed.params
    model = seed.model(start) if isinstance(start, str) else copy.deepcopy(start)
    cfg = sf.CropTraining(steps=p["finetune_steps"], crop=p["crop"], batch=p["batch"], lr=p["lr"] / 4, seed=p["seed"])
    cfg = replace(cfg, **change, **({} if train_seed is None else {"seed": train_seed}))
    sf.train_detector(model, frames, cfg, progress=False)
    return model


def fold_cut(real: Real, model, ft: int, views: int = 1) -> float:
    "The folds' rule: the cut with the best F1 on the fine-tuning frame, matched within 4 px, with `views`."
    return sf.choose_score_threshold(model, [(real.image[ft], real.truth[ft])], "asinh", GRID, 4.0, views)[0]


def refit_fold(real: Real, seed: Seed, ft: int, frames: list, **change) -> pd.DataFrame:
    "The fold's fine-tuning redone on `frames` (`fine_tuned`, with `change`), on its test frame at the folds' cut."
    model = fine_tuned(seed, frames, **change)
    return detect(real, model, test_frame(ft), fold_cut(real, model, ft))


def real_frame(real: Real, n: int, truth=None):
    return sf.make_frame(real.image[n], real.truth[n] if truth is None else truth)


def shipped(real: Real, seed: Seed, ft: int) -> dict:
    "The fold model as the study saved it, at its card's cut and with its card's test-time views."
    return {"as shipped": detect(real, seed.model(f"ft{ft}"), test_frame(ft), seed.cut(ft), seed.views(ft))}


def winpos(real: Real, seed: Seed, ft: int) -> dict:
    "Detections moved to sep's windowed centroid (moves over `cap` px refused)."
    import sep

    from astronb.extract import sep_input

    test = test_frame(ft)
    d = shipped(real, seed, ft)["as shipped"]
    data, _ = sep_input(real.image[test])
    sub = data - sep.Background(data).back()
    out = {}
    for sig in (0.8, 1.2, 1.6):
        x, y, flag = sep.winpos(sub, d.x.to_numpy() - 1, d.y.to_numpy() - 1, np.full(len(d), sig))
        for cap in (1.0, 2.0):
            ok = (flag == 0) & (np.hypot(x + 1 - d.x, y + 1 - d.y) <= cap)
            out[f"sep.winpos, sigma {sig} px, moves <= {cap} px"] = d.assign(
                x=np.where(ok, x + 1, d.x), y=np.where(ok, y + 1, d.y)
            )
    return out


def median_offset(det, catalogue, radius: float = 2.0) -> np.ndarray:
    "Median (dx, dy) of `det` from the catalogue's sources matched within `radius` px."
    m = np.asarray(match_points(xy(det), xy(catalogue), radius))
    return np.median(xy(det)[m[:, 0]] - xy(catalogue)[m[:, 1]], axis=0)


def offset(real: Real, seed: Seed, ft: int) -> dict:
    "The network's median offset from SExtractor's centroids on the frame it detects on, subtracted."
    d = shipped(real, seed, ft)["as shipped"]
    dx, dy = median_offset(d, real.sextractor[test_frame(ft)])
    return {"median offset from SExtractor subtracted": d.assign(x=d.x - dx, y=d.y - dy)}


def cuts(real: Real, seed: Seed, ft: int) -> dict:
    "The cut that would be best on the test frame (an oracle, after the fact), at each radius."
    test = test_frame(ft)
    d = detect(real, seed.model(f"ft{ft}"), test, float(GRID.min()))
    out = {}
    for r in RADII:
        best = GRID[int(np.argmax([f1(d[d.score >= g], real.truth[test], r) for g in GRID]))]
        out[f"oracle cut at {r} px (read the {r} px column)"] = d[d.score >= best]
    return out


def snapped(truth, catalogue, radius: float):
    """List entries moved one-to-one onto the catalogue's centroids within `radius` px (box). Not
    `astronb.scoring.snap_to_catalogue`, which moves each detection to its nearest source: two entries must not land on
    one centroid."""
    out = truth.copy()
    m = np.asarray(match_points(xy(truth), xy(catalogue), radius))
    out.loc[out.index[m[:, 0]], ["x", "y"]] = xy(catalogue)[m[:, 1]]
    out["x0"], out["y0"] = out.x - 1, out.y - 1
    return out


def clean(real: Real, seed: Seed, ft: int) -> dict:
    "Fine-tuning on the fold's list with its entries moved onto a classical extractor's centroids."
    lists = {
        "control (the study's fine-tuning)": real.truth[ft],
        "list on SExtractor's centroids within 2 px": snapped(real.truth[ft], real.sextractor[ft], 2.0),
        "list on SExtractor's centroids within 3 px": snapped(real.truth[ft], real.sextractor[ft], 3.0),
        "list on sep's centroids within 3 px": snapped(real.truth[ft], real.sep[ft], 3.0),
    }
    return {label: refit_fold(real, seed, ft, [real_frame(real, ft, truth)]) for label, truth in lists.items()}


def mix(real: Real, seed: Seed, ft: int) -> dict:
    "Fine-tuning crops drawn from the real frame and 4 simulated training-like frames."
    p = seed.params
    cfg, _ = sf.calibrate([real.image[n] for n in FRAMES], [real.truth[n] for n in FRAMES])
    cfg = replace(cfg, galaxy_fraction=p["train_galaxy_fraction"])
    sims = [sf.make_frame(*sf.simulate_frame(cfg, seed=p["seed"] * 1000 + i)[:2]) for i in range(4)]
    a = real_frame(real, ft)
    runs = {"control": [a], "real frame 4 of 8 frames": [a] * 4 + sims, "1 of 5": [a] + sims}
    return {label: refit_fold(real, seed, ft, frames) for label, frames in runs.items()}


def steps(real: Real, seed: Seed, ft: int) -> dict:
    "The fold's fine-tuning longer than the study's, or at another learning rate; the cut by the same rule."
    n, lr = seed.params["finetune_steps"], seed.params["lr"] / 4
    runs = {
        f"control: {n} steps, lr {lr:g}": {},
        f"{2 * n} steps": dict(steps=2 * n),
        f"{4 * n} steps": dict(steps=4 * n),
        f"{n} steps, lr {2 * lr:g}": dict(lr=2 * lr),
        f"{4 * n} steps, lr {lr / 2:g}": dict(steps=4 * n, lr=lr / 2),
    }
    return {label: refit_fold(real, seed, ft, [real_frame(real, ft)], **change) for label, change in runs.items()}


def pseudo_list(det) -> pd.DataFrame:
    "Detections as a truth list (code 100 star, 200 galaxy)."
    return pd.DataFrame(dict(x=det.x, y=det.y, code=np.where(det.cls == "star", 100, 200)))


def selftrain(real: Real, seed: Seed, ft: int) -> dict:
    """The fold model trained 40 more steps on its fine-tuning frame plus the test frame labelled with its own
    detections; the fold's cut kept."""
    test = test_frame(ft)
    d = shipped(real, seed, ft)["as shipped"]
    agree = d.iloc[[i for i, _ in match_points(xy(d), xy(real.sextractor[test]), 1.5)]]
    labels = {
        "control: 40 more steps on the fine-tuning frame alone": None,
        "pseudo-labels: detections above the fold's cut": d,
        "pseudo-labels: score >= 0.9": d[d.score >= 0.9],
        "pseudo-labels: SExtractor also finds them within 1.5 px": agree,
    }
    out = {}
    for label, pl in labels.items():
        frames = [real_frame(real, ft)] + ([] if pl is None else [sf.make_frame(real.image[test], pseudo_list(pl))])
        model = fine_tuned(seed, frames, start=f"ft{ft}", train_seed=0)
        out[label] = detect(real, model, test, seed.cut(ft))
    return out


def merged_at_fold_cut(real: Real, runs, ft: int) -> pd.DataFrame:
    """Detections of several runs (`runs(n)`: a list of catalogues of frame n, every score kept) merged on the fold's
    test frame, cut where the merged F1 on the fine-tuning frame at 4 px is best (the folds' rule)."""
    own, other = sf.merge_detections(runs(ft)), sf.merge_detections(runs(test_frame(ft)))
    best = GRID[int(np.argmax([f1(own[own.score >= g], real.truth[ft], 4.0) for g in GRID]))]
    return other[other.score >= best]


def ensemble(real: Real, seeds: list, ft: int) -> dict:
    "The seeds' fold models together; the ensemble's cut by the folds' rule."
    models = [s.model(f"ft{ft}") for s in seeds]

    def runs(n):
        return [detect(real, m, n, float(GRID.min())) for m in models]

    return {f"ensemble of {len(seeds)} seeds": merged_at_fold_cut(real, runs, ft)}


def tta(real: Real, seed: Seed, ft: int) -> dict:
    """Test-time augmentation (`sf.detect_frame(..., views=n)`: the fold model on each view of the frame, detections
    moved back and merged by position, score averaged over the views), the cut by the folds' rule on the merged scores;
    the control is one view by that rule."""
    model = seed.model(f"ft{ft}")
    out = {}
    for label, views in {
        "control: one view, the same cut rule": 1,
        "8 flips and rotations": 8,
        "4 rotations": 4,
    }.items():
        cut, _ = sf.choose_score_threshold(model, [(real.image[ft], real.truth[ft])], "asinh", GRID, 4.0, views)
        out[label] = sf.detect_frame(model, real.image[test_frame(ft)], "asinh", score_min=cut, views=views)
    return out


def on_test_frames(real: Real, models: dict, ft: int, frames: dict) -> dict:
    """Each model (label -> model) on each version of the fold's test frame (`frames`: label -> (image, SExtractor's
    catalogue of it)), with the study's `VIEWS`, cut by the folds' rule on the fine-tuning frame as it is (on the
    study's fold models the rule gives their card's cut when the card has those views); each catalogue paired with
    SExtractor's of the same frame."""
    cuts = {label: fold_cut(real, m, ft, VIEWS) for label, m in models.items()}
    return {
        f"{label}, {name}": (sf.detect_frame(model, img, "asinh", cuts[label], views=VIEWS), sex)
        for name, (img, sex) in frames.items()
        for label, model in models.items()
    }


def seeing_frames(real: Real, ft: int) -> dict:
    "The fold's test frame as it is and in each worse seeing of `SEEING`: label -> (image, SExtractor's catalogue)."
    n = test_frame(ft)
    return {f"test seeing x{f:g}": real.in_seeing(n, f) for f in (1.0, *SEEING)}


def smear_frames(real: Real, ft: int) -> dict:
    "The fold's test frame as it is and through each smeared PSF of `SMEAR`: label -> (image, SExtractor's catalogue)."
    n = test_frame(ft)
    smeared = {f"PSF x{f:g} along {a} deg": real.smeared(n, f, a) for f, a in SMEAR}
    return {"test frame as it is": real.in_seeing(n, 1.0)} | smeared


def at_seeing(real: Real, models: dict, ft: int) -> dict:
    "`on_test_frames` on `seeing_frames`."
    return on_test_frames(real, models, ft, seeing_frames(real, ft))


def at_smear(real: Real, models: dict, ft: int) -> dict:
    "`on_test_frames` on `smear_frames`."
    return on_test_frames(real, models, ft, smear_frames(real, ft))


def seeing(real: Real, seed: Seed, ft: int) -> dict:
    """The fold model on its test frame in worse seeing (`at_seeing`), and the fold's fine-tuning redone with copies
    of the fine-tuning frame in worse seeing (`COPIES`) beside it (`sf.with_seeing_copies`, as `astronb train starfield
    --seeing-copies` makes them)."""
    frames = [sf.make_frame(i, t) for i, t in sf.with_seeing_copies([(real.image[ft], real.truth[ft])], COPIES)]
    models = {
        "the fold model": seed.model(f"ft{ft}"),
        "fine-tuned with the copies": fine_tuned(seed, frames),
    }
    return at_seeing(real, models, ft)


def seeingcut(real: Real, seed: Seed, ft: int) -> dict:
    """The fold model on its test frame in each worse seeing of `SEEING`, at the fold's cut and at a cut matched to
    that seeing: the folds' rule on the fine-tuning frame made as much worse (`worse_seeing`, the copies' noise)."""
    n, model = test_frame(ft), seed.model(f"ft{ft}")
    cut, out = fold_cut(real, model, ft, VIEWS), {}
    for factor in SEEING:
        img, sex = real.in_seeing(n, factor)
        worse_ft = [(worse_seeing(real.image[ft], factor, seed=sf.COPY_NOISE_SEED), real.truth[ft])]
        matched = sf.choose_score_threshold(model, worse_ft, "asinh", GRID, 4.0, VIEWS)[0]
        for label, c in (("the fold's cut", cut), ("the cut chosen in that seeing", matched)):
            out[f"{label}, test seeing x{factor:g}"] = (sf.detect_frame(model, img, "asinh", c, views=VIEWS), sex)
    return out


def sim_model(real: Real, seed: Seed, change):
    """The seed's simulated-only model trained again as the study trains it (its calibrated simulator, training frames,
    steps, crops and galaxy prior), on frames simulated with `change(config, real frames' stats)` instead of the
    calibrated config; about 5 minutes at smoke scale on 2 CPU cores."""
    p = seed.params
    cfg, stats = sf.calibrate([real.image[n] for n in FRAMES], [real.truth[n] for n in FRAMES])
    gf = p["train_galaxy_fraction"] or cfg.galaxy_fraction
    sim = change(replace(cfg, galaxy_fraction=gf), stats)
    frames = [
        sf.make_frame(*sf.simulate_frame(sim, seed=p["seed"] * 1000 + i)[:2], p["norm"])
        for i in range(p["n_train_frames"])
    ]
    torch.manual_seed(p["seed"])
    model = sf.build_detector(p["backbone"], p["pretrained_backbone"])
    crops = sf.CropTraining(
        steps=p["steps"], crop=p["crop"], batch=p["batch"], lr=p["lr"], seed=p["seed"], galaxy_crops=p["galaxy_crops"]
    )
    sf.train_detector(model, frames, crops, progress=False)
    sf.set_galaxy_prior(model, gf, cfg.galaxy_fraction)
    return model


def wider_seeing_model(real: Real, seed: Seed):
    "`sim_model` with the training seeing FWHM drawn up to `WIDE_SEEING` times the real frames' median (study: 1.15)."
    return sim_model(real, seed, lambda c, st: replace(c, fwhm=(c.fwhm[0], WIDE_SEEING * float(st.fwhm_px.median()))))


def shaped_psf_model(real: Real, seed: Seed):
    "`sim_model` with elongated PSFs: axis ratio drawn in `SHAPES` at a random angle per frame (study: round)."
    return sim_model(real, seed, lambda c, st: replace(c, psf_axis_ratio=SHAPES))


_RETRAINED = {}  # (models folder, kind) -> its retrained simulated-only model, trained once for both folds


def retrained(real: Real, seed: Seed, make) -> torch.nn.Module:
    "The seed's simulated-only model retrained by `make` (`wider_seeing_model`, `shaped_psf_model`), once per seed."
    if (seed.models, make) not in _RETRAINED:
        _RETRAINED[seed.models, make] = make(real, seed)
    return _RETRAINED[seed.models, make]


def card_cuts(real: Real, seed: Seed, ft: int, frames: dict) -> dict:
    """The fold model on each version of its test frame (`frames`: label -> (image, SExtractor's catalogue)), at the
    fold's cut and cut as `astronb detect` cuts it with a card's cuts by seeing: `sf.seeing_cuts` on the fine-tuning
    frame (within 4 px, the study's views), then the row nearest the frame's measured seeing (`sf.seeing_score_min`);
    each catalogue paired with SExtractor's of the same frame."""
    model = seed.model(f"ft{ft}")
    rows = sf.seeing_cuts(model, [(real.image[ft], real.truth[ft])], "asinh", 4.0, (VIEWS,), grid=GRID)
    cut, out = fold_cut(real, model, ft, VIEWS), {}
    for name, (img, sex) in frames.items():
        picked = sf.seeing_score_min(rows, sf.frame_seeing(img), VIEWS, cut)
        for label, c in (("the fold's cut", cut), ("the card's cut for the frame's measured seeing", picked)):
            out[f"{label}, {name}"] = (sf.detect_frame(model, img, "asinh", c, views=VIEWS), sex)
    return out


def seeingpick(real: Real, seed: Seed, ft: int) -> dict:
    """`card_cuts` on `seeing_frames`. Frames beyond the card's checked seeing go to SExtractor in `detect`; here the
    network runs on them, as with `--fallback none`."""
    return card_cuts(real, seed, ft, seeing_frames(real, ft))


def smear(real: Real, seed: Seed, ft: int) -> dict:
    """`card_cuts` on `smear_frames`: does the margin hold for a PSF of another shape than the two frames' (axis ratio
    0.63 and 0.67, major axes at -17 and -28 degrees)?"""
    return card_cuts(real, seed, ft, smear_frames(real, ft))


def simseeing(real: Real, seed: Seed, ft: int) -> dict:
    """The fold's fine-tuning redone from a simulated-only model trained on a wider range of seeing
    (`wider_seeing_model`), beside the fold model, both on the test frame in worse seeing too (`at_seeing`)."""
    start = retrained(real, seed, wider_seeing_model)
    models = {
        "the fold model": seed.model(f"ft{ft}"),
        f"simulated seeing up to x{WIDE_SEEING:g}": fine_tuned(seed, [real_frame(real, ft)], start=start),
    }
    return at_seeing(real, models, ft)


def simshape(real: Real, seed: Seed, ft: int) -> dict:
    """The fold's fine-tuning redone from a simulated-only model trained on elongated PSFs (`shaped_psf_model`), beside
    the fold model, both on the test frame as it is and through the smeared PSFs of `at_smear`."""
    start = retrained(real, seed, shaped_psf_model)
    models = {
        "the fold model": seed.model(f"ft{ft}"),
        f"simulated PSF axis ratio {SHAPES[0]:g}-{SHAPES[1]:g}": fine_tuned(seed, [real_frame(real, ft)], start=start),
    }
    return at_smear(real, models, ft)


PER_SEED = dict(
    shipped=shipped,
    winpos=winpos,
    offset=offset,
    cuts=cuts,
    clean=clean,
    mix=mix,
    selftrain=selftrain,
    steps=steps,
    tta=tta,
    seeing=seeing,
    seeingcut=seeingcut,
    seeingpick=seeingpick,
    simseeing=simseeing,
    smear=smear,
    simshape=simshape,
)


def fold_ratios(real: Real, seed, variant) -> dict:
    "Each label's ratios of one seed (or, for the ensemble, of the seeds together): an array (fold, radius)."
    out = {}
    for ft in FRAMES:
        for label, det in variant(real, seed, ft).items():
            out.setdefault(label, []).append(ratios(real, det, test_frame(ft)))
    return {label: np.array(v) for label, v in out.items()}


def table(per_seed: list) -> pd.DataFrame:
    "Each label's two-fold mean ratio at each radius, per seed when there are several, and the mean over the seeds."
    rows = {}
    for label in per_seed[0]:
        a = np.stack([s[label] for s in per_seed])  # (seed, fold, radius)
        each = {f"seed {k}, {r} px": a[k, :, i].mean() for k in range(len(a)) for i, r in enumerate(RADII)}
        rows[label] = (each if len(a) > 1 else {}) | {f"mean, {r} px": a[:, :, i].mean() for i, r in enumerate(RADII)}
    return pd.DataFrame(rows).T.round(3)


def at_edge(truth, shape, px: float = 5.0) -> np.ndarray:
    "Which list entries have their centre (1-based x, y) within `px` of the frame's edge."
    u, v = truth.x.to_numpy() - 0.5, truth.y.to_numpy() - 0.5  # continuous coordinates
    h, w = shape
    return np.minimum.reduce([u, v, w - u, h - v]) < px


def found(det, truth, radius: float) -> np.ndarray:
    "Which list entries the study's one-to-one matching within `radius` px gives a detection."
    return np.isin(np.arange(len(truth)), match_points(xy(det), xy(truth), radius)[:, 1])


def edge_counts(real: Real, seed: Seed, ft: int) -> list:
    "Found and listed entries at the edge and inside, on the fold's test frame: its network, SExtractor and sep."
    t = test_frame(ft)
    edge = at_edge(real.truth[t], real.image[t].shape)
    dets = {
        "network (fold)": shipped(real, seed, ft)["as shipped"],
        "SExtractor": real.sextractor[t],
        "sep": real.sep[t],
    }
    rows = []
    for name, det in dets.items():
        for r in RADII:
            f = found(det, real.truth[t], r)
            for where, k in (("edge", edge), ("inside", ~edge)):
                rows.append(dict(method=name, radius=r, where=where, found=int(f[k].sum()), listed=int(k.sum())))
    return rows


def edge_recall(real: Real, seeds: list) -> pd.DataFrame:
    """Recall of the list entries within 5 px of the frame's edge and of the others, pooled over the seeds' fold test
    frames (the classical extractors counted once per seed, like the networks), with Wilson intervals."""
    rows = [r for s in seeds for ft in FRAMES for r in edge_counts(real, s, ft)]
    t = pd.DataFrame(rows).groupby(["method", "radius", "where"], sort=False).sum().reset_index()
    return with_wilson(t, "recall", "found", "listed").round(3)


def variant_runs(real: Real, seeds: list, variant: str) -> list:
    "One entry per seed (`fold_ratios`), or one for the seeds together (the ensemble)."
    if variant == "ensemble":
        return [fold_ratios(real, seeds, ensemble)]
    return [fold_ratios(real, s, PER_SEED[variant]) for s in seeds]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="a fold-models folder per training seed")
    ap.add_argument("--variants", nargs="+", default=["shipped"], choices=[*PER_SEED, "ensemble"])
    ap.add_argument("--edges", action="store_true", help="also the recall of list entries at the frame's edge")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    real, seeds = Real.load(), [Seed(m) for m in a.models]
    pd.set_option("display.width", 200)
    for v in a.variants:
        print(f"\n## {v}: two-fold mean F1 ratio against the SExtractor binary\n")
        print(table(variant_runs(real, seeds, v)).to_string(float_format="{:.3f}".format), flush=True)
    if a.edges:
        print("\n## recall of the list entries within 5 px of the frame's edge and inside\n")
        print(edge_recall(real, seeds).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
