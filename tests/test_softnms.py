"""Property-based tests: the fast soft-NMS equals the sequential oracle (hypothesis), and the RoIHeads drop-in."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from astronb.softnms import METHODS, SMALL_COMPONENT, _clustered, batched_soft_nms, soft_nms, soft_nms_reference
from astronb.softnms_rcnn import use_soft_nms

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def box_sets(draw, max_n=60):
    "Random, clustered and degenerate (zero-area, identical, nested) boxes with scores."
    n = draw(st.integers(0, max_n))
    kind = draw(st.sampled_from(["random", "clustered", "degenerate", "grid"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(0, 30, (n, 2))
    elif kind == "clustered":
        c = rng.uniform(0, 100, (max(1, n // 5), 2))
        xy = c[rng.integers(0, len(c), n)] + rng.normal(0, 1.5, (n, 2))
        wh = rng.uniform(8, 13, (n, 2))
    elif kind == "grid":  # integer pixel boxes: exact ties of IoU and touching edges (the +1 convention matters)
        xy = rng.integers(0, 20, (n, 2)).astype(float)
        wh = rng.integers(0, 6, (n, 2)).astype(float)
    else:
        base = rng.uniform(0, 50, (1, 4))
        base[:, 2:] = base[:, :2] + 10
        pick = rng.integers(0, 4, n)
        xy = np.where(pick[:, None] == 0, base[:, :2], rng.uniform(0, 20, (n, 2)))
        wh = np.where(pick[:, None] == 0, 10.0, np.where(pick[:, None] == 1, 0.0, rng.uniform(0, 12, (n, 2))))
        nested = pick == 2
        xy[nested] = base[0, :2] + 2
        wh[nested] = 6  # boxes inside the base box
    boxes = np.hstack([xy, xy + wh])
    score_kind = draw(st.sampled_from(["uniform", "ties", "low"]))
    if score_kind == "uniform":
        scores = rng.uniform(0, 1, n)
    elif score_kind == "ties":
        scores = rng.choice([0.2, 0.5, 0.9], n)  # many exactly equal scores
    else:
        scores = rng.uniform(0, 0.01, n)  # around the score threshold
    return boxes, scores


def assert_same(fast, ref):
    (k1, s1), (k0, s0) = fast, ref
    k1 = np.asarray(k1)
    s1 = np.asarray(s1, dtype=np.float64)
    assert k1.tolist() == k0.tolist()  # same kept set, same order
    np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-5)


@SETTINGS
@given(
    box_sets(),
    st.sampled_from(METHODS),
    st.booleans(),
    st.sampled_from([0.3, 0.5, 0.6]),
    st.sampled_from([0.0, 0.001, 0.05]),
    st.sampled_from([0.3, 0.5, 0.7]),
)
def test_equals_oracle(bs, method, legacy, sigma, thr, nt):
    boxes, scores = bs
    ref = soft_nms_reference(boxes, scores, method, sigma, nt, thr, legacy)
    assert_same(soft_nms(boxes, scores, method, sigma, nt, thr, legacy), ref)


@st.composite
def clusters(draw, max_n=120):
    """One dense cluster, the input of the dense sweep: boxes around one point (some identical, some on whole pixels),
    scores with exact ties or near the threshold."""
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = 50 + rng.normal(0, draw(st.sampled_from([0.0, 1.0, 3.0])), (n, 2))
    wh = rng.uniform(10, 25, (n, 2))
    if draw(st.booleans()):
        c, wh = np.round(c), np.round(wh)  # whole pixels: exact ties of IoU
    boxes = np.hstack([c - wh / 2, c + wh / 2])
    dup = rng.random(n) < draw(st.sampled_from([0.0, 0.3]))
    boxes[dup] = boxes[0]  # identical boxes
    kind = draw(st.sampled_from(["uniform", "ties", "low"]))
    scores = {
        "uniform": lambda: rng.uniform(0, 1, n),
        "ties": lambda: rng.choice([0.2, 0.5, 0.9], n),
        "low": lambda: rng.uniform(0, 0.1, n),
    }[kind]()
    return boxes, scores


@SETTINGS
@given(
    clusters(),
    st.booleans(),
    st.sampled_from([0.3, 0.6, 2.0]),
    st.sampled_from([1e-6, 0.001, 0.05]),
    st.sampled_from([np.float64, np.float32]),
)
def test_dense_clusters_equal_oracle_bit_for_bit(bs, legacy, sigma, thr, dtype):
    """The dense sweep (log scores, exact decisions) gives the oracle's selections and scores to the last bit, for
    float64 and float32 inputs (the oracle gets the same float32 values in float64)."""
    boxes, scores = (a.astype(dtype) for a in bs)
    assert _clustered(boxes, float(legacy))  # the dense path is the one tested
    k, s = soft_nms(boxes, scores, "gaussian", sigma, 0.3, thr, legacy)
    k0, s0 = soft_nms_reference(boxes.astype(float), scores.astype(float), "gaussian", sigma, 0.3, thr, legacy)
    assert k.tolist() == k0.tolist() and np.array_equal(s, s0)


@st.composite
def chains(draw):
    """Proposals chained along a wide row, one component of more than SMALL_COMPONENT boxes that is not a cluster: the
    input of the heap sweep."""
    n = draw(st.integers(SMALL_COMPONENT + 1, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = np.arange(n) * draw(st.sampled_from([2.0, 3.0])) + rng.normal(0, 0.3, n)
    y = rng.normal(0, 0.5, n)
    boxes = np.stack([x, y, x + 10, y + 10], 1)
    scores = rng.choice([0.3, 0.6, 0.9], n) if draw(st.booleans()) else rng.uniform(0, 1, n)
    return boxes, scores


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.sampled_from(METHODS), st.booleans())
def test_large_components_equal_oracle(bs, method, legacy):
    "A component too large for the plain loop goes through the heap sweep, with the oracle's result."
    boxes, scores = bs
    assert not _clustered(boxes, float(legacy))
    ref = soft_nms_reference(boxes, scores, method, 0.5, 0.3, 0.001, legacy)
    assert_same(soft_nms(boxes, scores, method, 0.5, 0.3, 0.001, legacy), ref)


@SETTINGS
@given(box_sets(), st.sampled_from(METHODS), st.booleans(), st.integers(1, 4))
def test_batched_equals_per_group_oracle(bs, method, legacy, ngroups):
    boxes, scores = bs
    groups = np.random.default_rng(len(boxes)).integers(0, ngroups, len(boxes))
    keep, sc = [], []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        k, s = soft_nms_reference(boxes[idx], scores[idx], method, 0.5, 0.3, 0.001, legacy)
        keep += idx[k].tolist()
        sc += s.tolist()
    keep, sc = np.array(keep, dtype=np.int64), np.array(sc)
    o = np.lexsort((keep, -sc))
    assert_same(batched_soft_nms(boxes, scores, groups, method, 0.5, 0.3, 0.001, legacy), (keep[o], sc[o]))


@SETTINGS
@given(box_sets(max_n=40), st.sampled_from(METHODS))
def test_float32_tensors(bs, method):
    boxes, scores = bs
    tb = torch.tensor(boxes, dtype=torch.float32)
    ts = torch.tensor(scores, dtype=torch.float32)
    k, s = soft_nms(tb, ts, method)
    assert k.dtype == torch.int64 and s.dtype == torch.float32
    k0, s0 = soft_nms_reference(tb.double().numpy(), ts.double().numpy(), method)  # the same float32 inputs
    assert k.tolist() == k0.tolist()
    np.testing.assert_allclose(s.numpy(), s0, rtol=0, atol=1e-5)


def test_hard_equals_torchvision_nms():
    from torchvision.ops import nms, batched_nms

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (3000, 2))
    b = torch.tensor(np.hstack([xy, xy + rng.uniform(5, 15, (3000, 2))]))
    s = torch.tensor(rng.uniform(0, 1, 3000))
    k, _ = soft_nms(b, s, "hard", iou_threshold=0.4, score_threshold=0.0)
    assert k.tolist() == nms(b, s, 0.4).tolist()
    g = torch.tensor(rng.integers(0, 3, 3000))
    k, _ = batched_soft_nms(b, s, g, "hard", iou_threshold=0.4, score_threshold=0.0)
    assert k.tolist() == batched_nms(b, s, g, 0.4).tolist()


@pytest.mark.parametrize(
    "bad,msg",
    [
        (dict(boxes=[[0, 0, float("inf"), 1]], scores=[1.0]), "infinite"),
        (dict(boxes=[[0, 3, 1, 1]], scores=[1.0]), "y2 < y1"),
        (dict(boxes=[[0, 0, 1, 1]], scores=[float("nan")]), "NaN"),
        (dict(boxes=[[0, 0, 1, 1], [0, 0, 1, 1]], scores=[1.0]), "match the boxes"),
        (dict(boxes=[[0, 0, 1, 1]], scores=[1.0], sigma=0.0), "sigma"),
        (dict(boxes=[0, 0, 1, 1], scores=[1.0]), "shape (N, 4)"),
    ],
)
def test_bad_input(bad, msg):
    kw = dict(bad)
    b = np.asarray(kw.pop("boxes"), dtype=float)
    s = np.asarray(kw.pop("scores"), dtype=float)
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        soft_nms(b, s, **kw)


def _tiny_detector():
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    import torch.nn as nn

    torch.manual_seed(0)
    body = nn.Sequential()
    body.add_module("c1", nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU()))
    body.add_module("c2", nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()))

    backbone = BackboneWithFPN(body, {"c1": "0", "c2": "1"}, [8, 16], 16)
    anchors = AnchorGenerator(((8,), (16,), (32,)), ((1.0,),) * 3)
    m = FasterRCNN(
        backbone,
        num_classes=3,
        rpn_anchor_generator=anchors,
        min_size=96,
        max_size=96,
        box_score_thresh=0.0,
        box_detections_per_img=300,
    )
    return m.eval()


def _canonical(det):
    """Detections in one defined order: score descending, then label and box (the order among equal scores is not
    defined by torchvision's hard NMS either, so the comparison must not depend on it)."""
    key = torch.cat([-det["scores"][:, None].double(), det["labels"][:, None].double(), det["boxes"].double()], 1)
    order = sorted(range(len(key)), key=lambda i: key[i].tolist())
    return {k: det[k][order] for k in ("boxes", "scores", "labels")}


def test_roi_heads_drop_in_hard_is_unchanged():
    "Over many seeded images, the drop-in's hard NMS returns exactly torchvision's detections (same set, same values)."
    m = _tiny_detector()
    hard = _tiny_detector()
    use_soft_nms(hard, method="hard", iou_threshold=m.roi_heads.nms_thresh, score_threshold=0.0)
    seen = 0
    for seed in range(12):
        img = [torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(seed))]
        with torch.no_grad():
            before, after = _canonical(m(img)[0]), _canonical(hard(img)[0])
        seen += len(before["boxes"])
        for k in ("boxes", "scores", "labels"):
            assert torch.equal(before[k], after[k]), (seed, k)
    assert seen > 100


def test_roi_heads_soft_keeps_more_and_decays():
    img = [torch.rand(3, 96, 96)]
    m = _tiny_detector()
    with torch.no_grad():
        hard = m(img)[0]
    use_soft_nms(m, method="gaussian", sigma=0.6, iou_threshold=0.3, score_threshold=0.001)
    with torch.no_grad():
        soft = m(img)[0]
    assert len(soft["boxes"]) >= len(hard["boxes"])
    assert (soft["scores"][:-1] >= soft["scores"][1:]).all()  # sorted by decayed score
    assert soft["scores"].max() <= hard["scores"].max() + 1e-6
