"""The crop viewpoint stage: bins, symmetry orbits, hypotheses, crops, loss and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scene3d_ros import CATEGORIES
from scene3d_ros.geometry import symmetric_rotation_error_deg, viewpoint_rotation
from scene3d_ros.mirror import mirror_rotations
from scene3d_ros.model.checkpoint import CheckpointError
from scene3d_ros.model.viewpoint import (
    MASK_POOLING_FLOOR,
    ViewpointBins,
    ViewpointModelConfig,
    ViewpointNet,
    ViewpointStage,
    azimuth_orbit,
    crop_boxes,
    crop_masks_to_boxes,
    crop_rays,
    decode_viewpoint,
    direction_loss,
    encode_viewpoint,
    mask_loss,
    mirror_averaged_outputs,
    mirror_outputs,
    orbit_masks,
    ray_rotation,
    shape_loss,
    square_boxes,
    to_egocentric,
    top_k_hypotheses,
    viewpoint_loss,
)
from scene3d_ros.model.viewpoint_checkpoint import (
    build_viewpoint_model,
    load_viewpoint_checkpoint,
    save_viewpoint_checkpoint,
)

BINS = ViewpointBins()


def _random_viewpoints(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [viewpoint_rotation(rng.uniform(0, 360), rng.uniform(-85, 85), rng.uniform(-170, 170)) for _ in range(n)]


def test_encode_decode_round_trip() -> None:
    for rotation in _random_viewpoints(200):
        target = encode_viewpoint(rotation, BINS)
        assert np.all(np.abs(target.offsets) <= 0.5 + 1e-9)
        decoded = decode_viewpoint(target.bins, target.offsets, BINS)
        assert symmetric_rotation_error_deg(decoded, rotation) < 1e-3
        again = encode_viewpoint(decoded, BINS)
        np.testing.assert_array_equal(again.bins, target.bins)
        np.testing.assert_allclose(again.offsets, target.offsets, atol=1e-5)


def test_bin_centres_are_off_by_at_most_half_a_bin() -> None:
    """Decoding the bins alone (offset 0) lands within half a bin of each angle."""
    for rotation in _random_viewpoints(100, seed=1):
        target = encode_viewpoint(rotation, BINS)
        centre = decode_viewpoint(target.bins, np.zeros(3), BINS)
        # three angles each off by <= 7.5 deg: the rotation is off by at most their sum
        assert symmetric_rotation_error_deg(centre, rotation) <= 3 * 7.5 + 1e-6


@pytest.mark.parametrize("symmetry, size", [("none", 1), ("c2", 2), ("c4", 4), ("continuous", 24)])
def test_symmetry_orbit_bins_show_the_same_rotation(symmetry: str, size: int) -> None:
    for rotation in _random_viewpoints(30, seed=2):
        target = encode_viewpoint(rotation, BINS)
        orbit = azimuth_orbit(int(target.bins[0]), symmetry, BINS)
        assert len(orbit) == size and orbit[0] == target.bins[0] and len(set(orbit.tolist())) == size
        if symmetry == "continuous":
            continue
        for member in orbit:  # every orbit bin (same offset) decodes to the same rotation modulo the symmetry
            bins = target.bins.copy()
            bins[0] = member
            decoded = decode_viewpoint(bins, target.offsets, BINS)
            assert symmetric_rotation_error_deg(decoded, rotation, symmetry) < 1e-3


def test_bins_must_allow_the_symmetries() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        ViewpointBins(azimuth=18)


def _outputs_for(rotation: np.ndarray, sharp: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits peaked at the rotation's bins, offsets equal to its offsets."""
    target = encode_viewpoint(rotation, BINS)
    logits = torch.zeros(BINS.total)
    offsets = torch.zeros(BINS.total)
    starts = (0, BINS.azimuth, BINS.azimuth + BINS.elevation)
    for start, b, o in zip(starts, target.bins, target.offsets, strict=True):
        logits[start + int(b)] = sharp
        offsets[start + int(b)] = float(o)
    return logits, offsets


def test_top_k_hypotheses_are_sorted_distinct_and_start_at_the_mode() -> None:
    rotation = _random_viewpoints(1, seed=3)[0]
    logits, offsets = _outputs_for(rotation)
    logits += torch.randn(BINS.total, generator=torch.Generator().manual_seed(0))
    hyp = top_k_hypotheses(logits, offsets, "none", BINS, k=8)
    assert hyp.rotations.shape == (8, 3, 3) and hyp.scores.shape == (8,)
    assert np.all(np.diff(hyp.scores) <= 0) and np.all(hyp.scores > 0) and hyp.scores.sum() <= 1.0 + 1e-9
    assert len({tuple(b) for b in hyp.bins.tolist()}) == 8
    assert symmetric_rotation_error_deg(hyp.rotations[0], rotation) < 1e-3


def _min_gap_deg(hypotheses, symmetry: str) -> float:
    rotations = hypotheses.rotations
    return min(float(symmetric_rotation_error_deg(rotations[i], rotations[j], symmetry))
               for i in range(len(rotations)) for j in range(i))


def test_separated_hypotheses_are_far_apart_and_keep_the_mode() -> None:
    """With non-maximum suppression, no two hypotheses lie within the separation (modulo the
    symmetry), the first is still the mode and the list is still k long and sorted; without it,
    the neighbouring bins of a peaked distribution crowd the list."""
    rotation = _random_viewpoints(1, seed=6)[0]
    logits, offsets = _outputs_for(rotation)
    logits += torch.randn(BINS.total, generator=torch.Generator().manual_seed(1))
    for symmetry in ("none", "c2"):
        plain = top_k_hypotheses(logits, offsets, symmetry, BINS, k=5)
        separated = top_k_hypotheses(logits, offsets, symmetry, BINS, k=5, separation_deg=30.0)
        assert separated.rotations.shape == (5, 3, 3) and np.all(np.diff(separated.scores) <= 0)
        assert symmetric_rotation_error_deg(separated.rotations[0], plain.rotations[0], symmetry) < 1e-9
        assert _min_gap_deg(separated, symmetry) >= 30.0
        assert _min_gap_deg(plain, symmetry) < 30.0
    # a continuous symmetry leaves too few far-apart triples among the pool: the list is still filled
    filled = top_k_hypotheses(logits, offsets, "continuous", BINS, k=5, separation_deg=90.0)
    assert len(filled.scores) == 5 and np.all(np.diff(filled.scores) <= 0)
    with pytest.raises(ValueError, match="separation_deg"):
        top_k_hypotheses(logits, offsets, "none", BINS, k=5, separation_deg=-1.0)


def test_top_k_hypotheses_fold_the_symmetry() -> None:
    """For a c2 object, the two azimuth bins of an orbit make one hypothesis whose score is their sum."""
    rotation = _random_viewpoints(1, seed=4)[0]
    logits, offsets = _outputs_for(rotation)
    az = int(encode_viewpoint(rotation, BINS).bins[0])
    flip = (az + BINS.azimuth // 2) % BINS.azimuth
    logits[flip], offsets[flip] = logits[az], offsets[az]  # the flip is as likely (the loss trains both offsets)
    hyp_none = top_k_hypotheses(logits, offsets, "none", BINS, k=4)
    hyp_c2 = top_k_hypotheses(logits, offsets, "c2", BINS, k=4)
    assert abs(hyp_none.scores[0] - hyp_none.scores[1]) < 1e-9  # two equal modes without the symmetry
    assert hyp_c2.scores[0] == pytest.approx(hyp_none.scores[0] + hyp_none.scores[1])
    errors = symmetric_rotation_error_deg(hyp_c2.rotations, rotation[None], "c2")
    assert errors[0] < 1e-3 and np.all(errors[1:] > 1.0)  # no second copy of the same rotation
    hyp_cont = top_k_hypotheses(logits, offsets, "continuous", BINS, k=4)
    assert symmetric_rotation_error_deg(hyp_cont.rotations[0], rotation, "continuous") < 1e-3


def test_loss_counts_the_whole_symmetry_orbit() -> None:
    rotation = _random_viewpoints(1, seed=5)[0]
    target = encode_viewpoint(rotation, BINS)
    logits, offsets = _outputs_for(rotation)
    flipped = logits.clone()
    az = int(target.bins[0])
    flipped[az], flipped[(az + 12) % 24] = 0.0, 8.0  # all azimuth mass on the 180 deg flip
    bins_t = torch.from_numpy(target.bins)[None]
    offs_t = torch.from_numpy(target.offsets)[None]

    def az_loss(out: torch.Tensor, symmetry: str) -> float:
        orbits = orbit_masks(bins_t[:, 0], [symmetry], BINS)
        return float(viewpoint_loss(out[None], offsets[None], bins_t, offs_t, orbits, BINS)["loss_azimuth"])

    assert az_loss(flipped, "none") > 5.0  # a flip is wrong for an asymmetric object ...
    assert az_loss(flipped, "c2") == pytest.approx(az_loss(logits, "c2"), abs=1e-5)  # ... right for a c2 one
    assert az_loss(flipped, "continuous") == pytest.approx(0.0, abs=1e-6)


def test_direction_loss_punishes_the_turned_answer_only() -> None:
    """Front/back loss: near 0 at the target, large at its 180 deg turn, indifferent to a wrong
    answer 90 deg away, and silent for objects whose orbit holds the turn (c2)."""
    target = torch.tensor([3, 3, 3])
    orbits = orbit_masks(target, ["none"] * 3, BINS)
    logits = torch.zeros(3, BINS.azimuth)
    logits[0, 3], logits[1, 3 + BINS.azimuth // 2], logits[2, 3 + BINS.azimuth // 4] = 8.0, 8.0, 8.0
    per_object = [float(direction_loss(logits[i:i + 1], orbits[i:i + 1])) for i in range(3)]
    assert per_object[0] < 0.01 and per_object[1] > 5.0 and abs(per_object[2] - np.log(2.0)) < 1e-6
    c2 = orbit_masks(target[:1], ["c2"], BINS)
    assert float(direction_loss(logits[1:2], c2)) == 0.0
    full = viewpoint_loss(torch.cat([logits, torch.zeros(3, BINS.elevation + BINS.inplane)], 1),
                          torch.zeros(3, BINS.total), torch.tensor([[3, 0, 0]] * 3), torch.zeros(3, 3), orbits, BINS,
                          direction_weight=2.0)
    assert float(full["loss_direction"]) == pytest.approx(2.0 * float(direction_loss(logits, orbits)))
    assert "loss_direction" not in viewpoint_loss(torch.zeros(3, BINS.total), torch.zeros(3, BINS.total),
                                                  torch.tensor([[3, 0, 0]] * 3), torch.zeros(3, 3), orbits, BINS)


def test_crops_at_image_borders_are_zero_outside_and_match_inside() -> None:
    image = torch.rand(3, 60, 80)
    boxes = torch.tensor([[-10.0, -10.0, 20.0, 20.0], [10.0, 10.0, 50.0, 50.0]])
    crops = crop_boxes(image, boxes, size=30, margin=0.0)
    assert crops.shape == (2, 3, 30, 30)
    # box 0 spans [-10, 20): its first third lies outside the image
    assert float(crops[0, :, :9, :].abs().max()) == 0.0 and float(crops[0, :, :, :9].abs().max()) == 0.0
    inside = image[:, 10:50, 10:50]  # box 1: 40 px -> 30 px, compare a smooth version
    expected = torch.nn.functional.interpolate(inside[None], size=(30, 30), mode="bilinear", antialias=True,
                                               align_corners=False)[0]
    assert float((crops[1] - expected).abs().mean()) < 0.08
    assert crop_boxes(image, torch.zeros(0, 4), 30, 0.1).shape == (0, 3, 30, 30)


def test_mirrored_outputs_decode_to_the_mirrored_rotation() -> None:
    """Outputs peaked at a viewpoint, remapped as a mirror image's, decode to the rotation that
    scene3d_ros.mirror gives the mirrored image (the convention the training labels use)."""
    for rotation in _random_viewpoints(6, seed=11):
        logits, offsets = _outputs_for(rotation)
        mirrored = top_k_hypotheses(*mirror_outputs(logits, offsets, BINS), "none", BINS, k=1).rotations[0]
        assert symmetric_rotation_error_deg(mirrored, mirror_rotations(rotation)[0]) < 1e-3
        twice = mirror_outputs(*mirror_outputs(logits, offsets, BINS), BINS)
        assert torch.equal(twice[0], logits) and torch.equal(twice[1], offsets)


def test_mirror_averaging_is_exactly_mirror_equivariant() -> None:
    """Averaged over a crop and its mirror image, the stage says for the mirrored crop exactly the
    mirror of what it says for the crop, which a plain network does not."""
    torch.manual_seed(1)
    model = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, dropout=0.0), len(CATEGORIES)).eval()
    crops = torch.rand(3, 3, 64, 64)
    labels = torch.tensor([1, 5, 7])
    rays = torch.nn.functional.normalize(torch.tensor([[0.2, -0.1, 1.0], [-0.3, 0.05, 1.0], [0.0, 0.0, 1.0]]), dim=1)
    mirrored_rays = rays * torch.tensor([-1.0, 1.0, 1.0])
    with torch.no_grad():
        averaged = mirror_averaged_outputs(model, crops, labels, rays)
        of_mirror = mirror_averaged_outputs(model, crops.flip(-1), labels, mirrored_rays)
        plain, plain_mirror = model(crops, labels, rays), model(crops.flip(-1), labels, mirrored_rays)
    assert averaged[2] is None  # no shape head
    expected = mirror_outputs(*averaged[:2], BINS)
    torch.testing.assert_close(of_mirror[0], expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(of_mirror[1], expected[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain_mirror[0], mirror_outputs(*plain[:2], BINS)[0], atol=1e-3)
    probabilities = [part.exp().sum(-1) for part in BINS.split(averaged[0])]
    assert all(float(p.max()) <= 1.0 + 1e-5 for p in probabilities)  # geometric means: at most 1 before softmax


def test_crop_rays_and_egocentric_hypotheses() -> None:
    k = torch.tensor([[200.0, 0.0, 80.0], [0.0, 200.0, 60.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    boxes = torch.tensor([[70.0, 50.0, 90.0, 70.0], [150.0, 50.0, 170.0, 70.0]], dtype=torch.float64)
    rays = crop_rays(boxes, k)
    np.testing.assert_allclose(rays[0].numpy(), [0.0, 0.0, 1.0], atol=1e-12)  # box centred on the principal point
    np.testing.assert_allclose(rays[1].numpy(), np.array([80.0, 0.0, 200.0]) / np.hypot(80.0, 200.0), atol=1e-12)
    r_ray = ray_rotation(rays)[1].numpy()
    np.testing.assert_allclose(r_ray @ np.array([0.0, 0.0, 1.0]), rays[1].numpy(), atol=1e-12)
    rotation = _random_viewpoints(1, seed=6)[0]
    logits, offsets = _outputs_for(rotation)
    hyp = to_egocentric(top_k_hypotheses(logits, offsets, "none", BINS, 2), rays[1])
    assert symmetric_rotation_error_deg(hyp.rotations[0], r_ray @ rotation) < 1e-3


def _fit_fixed_batch(model: torch.nn.Module, loss_of_batch, steps: int = 15) -> list[float]:
    """``steps`` Adam steps (lr 1e-3) on ``loss_of_batch()``; the loss before each step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = loss_of_batch()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_a_few_steps_lower_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    config = ViewpointModelConfig(crop_size=64, hidden=64, dropout=0.0)
    model = ViewpointNet(config, len(CATEGORIES)).train()
    crops = torch.rand(8, 3, 64, 64)
    labels = torch.randint(1, len(CATEGORIES) + 1, (8,))
    rays = torch.nn.functional.normalize(torch.randn(8, 3), dim=1)
    targets = [encode_viewpoint(r, config.bins) for r in _random_viewpoints(8, seed=7)]
    bins = torch.from_numpy(np.stack([t.bins for t in targets]))
    offsets = torch.from_numpy(np.stack([t.offsets for t in targets]))
    orbits = orbit_masks(bins[:, 0], ["none"] * 8, config.bins)
    losses = _fit_fixed_batch(model, lambda: sum(viewpoint_loss(*model(crops, labels, rays)[:2], bins, offsets,
                                                                 orbits, config.bins).values()))
    assert losses[-1] < 0.5 * losses[0]


SHAPES = ("bus/coach", "bus/double_decker", "car/hatchback", "car/pickup", "car/sedan")


def test_shape_head_only_scores_the_crops_category_and_learns_a_fixed_batch() -> None:
    torch.manual_seed(0)
    config = ViewpointModelConfig(crop_size=64, hidden=64, dropout=0.0, shapes=SHAPES)
    model = ViewpointNet(config, len(CATEGORIES), CATEGORIES).train()
    labels = torch.tensor([CATEGORIES.index("bus") + 1, CATEGORIES.index("car") + 1] * 3)
    targets = torch.tensor([0, 2, 1, 4, 0, -1])  # -1: no known shape class, ignored
    crops, rays = torch.rand(6, 3, 64, 64), torch.nn.functional.normalize(torch.randn(6, 3), dim=1)
    shapes = model(crops, labels, rays).shapes
    assert torch.isinf(shapes[0, 2:]).all() and torch.isfinite(shapes[0, :2]).all()  # a bus: bus shapes only
    assert torch.isinf(shapes[1, :2]).all() and torch.isfinite(shapes[1, 2:]).all()
    assert model(crops, labels, rays).masks is None  # no mask head asked for
    losses = _fit_fixed_batch(model, lambda: shape_loss(model(crops, labels, rays).shapes, targets))
    assert losses[-1] < 0.5 * losses[0]
    assert float(shape_loss(shapes, torch.full((6,), -1)).detach()) == 0.0
    with pytest.raises(ValueError, match="category names"):
        ViewpointNet(config, len(CATEGORIES))
    with pytest.raises(ValueError, match="unknown categories"):
        ViewpointNet(ViewpointModelConfig(shapes=("spaceship/x",)), len(CATEGORIES), CATEGORIES)
    with pytest.raises(ValueError, match="distinct"):
        ViewpointModelConfig(shapes=("bus/coach", "bus/coach"))


def test_checkpoint_round_trip_and_refusals(tmp_path) -> None:
    config = ViewpointModelConfig(crop_size=64, hidden=32)
    model = ViewpointNet(config, len(CATEGORIES)).eval()
    path = tmp_path / "vp.pt"
    save_viewpoint_checkpoint(path, model, CATEGORIES, step=7, dtype=torch.float16)
    loaded = build_viewpoint_model(path, expected_classes=CATEGORIES)
    x = torch.rand(2, 3, 64, 64)
    labels, rays = torch.tensor([1, 5]), torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0]])
    with torch.no_grad():
        a, b = model(x, labels, rays), loaded(x, labels, rays)
    assert torch.allclose(a[0], b[0], atol=2e-2)
    with pytest.raises(CheckpointError, match="classes"):
        load_viewpoint_checkpoint(path, expected_classes=CATEGORIES[:3])
    with pytest.raises(CheckpointError, match="model config"):
        load_viewpoint_checkpoint(path, expected_config=ViewpointModelConfig(crop_size=96, hidden=32))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_viewpoint_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "scene3d_ros.checkpoint", "model": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a viewpoint-stage checkpoint"):
        load_viewpoint_checkpoint(foreign)


def test_export_model_writes_a_half_precision_stage(tmp_path) -> None:
    from scene3d_ros.cli.export_model import main

    torch.manual_seed(0)
    model = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32), len(CATEGORIES)).eval()
    source = tmp_path / "last.pt"
    optimizer = torch.optim.AdamW(model.parameters())
    save_viewpoint_checkpoint(source, model, CATEGORIES, optimizer=optimizer, step=12, extra={"crops_seen": 384})
    out = tmp_path / "viewpoint_default.pt"
    assert main([str(source), str(out)]) == 0
    exported = load_viewpoint_checkpoint(out, expected_classes=CATEGORIES)
    assert exported["optimizer"] is None and exported["step"] == 12 and exported["extra"]["crops_seen"] == 384
    assert all(v.dtype == torch.float16 for v in exported["model"].values() if v.is_floating_point())
    assert out.stat().st_size < 0.6 * source.stat().st_size
    x = torch.rand(2, 3, 64, 64)
    labels, rays = torch.tensor([2, 7]), torch.tensor([[0.0, 0.0, 1.0], [0.2, -0.1, 1.0]])
    with torch.no_grad():
        assert torch.allclose(model(x, labels, rays)[0], build_viewpoint_model(out)(x, labels, rays)[0], atol=2e-2)


def test_stage_gives_each_object_its_categorys_shape_probabilities_mirror_invariant() -> None:
    torch.manual_seed(2)
    config = ViewpointModelConfig(crop_size=64, hidden=32, dropout=0.0, shapes=SHAPES)
    model = ViewpointNet(config, len(CATEGORIES), CATEGORIES)
    model.load_imagenet()  # a randomly initialised MobileNetV2 pools to ~0 in eval mode: nothing to tell apart
    torch.nn.init.normal_(model.shape_logits.weight, std=0.1)
    stage = ViewpointStage(model.eval(), CATEGORIES, k=3, symmetries={})
    image = torch.rand(3, 120, 160)
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0], [90.0, 30.0, 150.0, 70.0]])
    labels = torch.tensor([CATEGORIES.index("bus") + 1, CATEGORIES.index("car") + 1])
    k = torch.tensor([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])
    bus, car = stage.predict(image, boxes, labels, k)
    assert set(bus.shapes) == {"bus/coach", "bus/double_decker"}
    assert set(car.shapes) == {"car/hatchback", "car/pickup", "car/sedan"}
    assert abs(sum(car.shapes.values()) - 1.0) < 1e-9 and len(set(car.shapes.values())) == 3
    mirrored_boxes = torch.stack([160.0 - boxes[:, 2], boxes[:, 1], 160.0 - boxes[:, 0], boxes[:, 3]], dim=1)
    mirrored_k = k.clone()
    mirrored_k[0, 2] = 160.0 - k[0, 2]
    mirrored = stage.predict(image.flip(-1), mirrored_boxes, labels, mirrored_k)
    for a, b in zip((bus, car), mirrored, strict=True):  # the same shape seen in a mirror
        assert all(abs(a.shapes[name] - b.shapes[name]) < 1e-4 for name in a.shapes)
    plain = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32), len(CATEGORIES)).eval()
    assert ViewpointStage(plain, CATEGORIES, k=3, symmetries={}).predict(image, boxes, labels, k)[0].shapes is None


def test_crop_masks_resample_onto_their_boxes() -> None:
    """A crop-square mask that is 1 exactly over the box's left half becomes a box mask whose left
    half is 1 and right half 0 (margins and off-centre squares included)."""
    boxes = torch.tensor([[10.0, 20.0, 70.0, 50.0], [5.0, 5.0, 25.0, 45.0]])  # wide and tall boxes
    margin, size = 0.25, 40
    squares = square_boxes(boxes, margin)
    masks = torch.zeros(2, size, size)
    for i in range(2):
        scale = size / float(squares[i, 2] - squares[i, 0])
        x0, y0, x1, y1 = ((boxes[i] - squares[i, [0, 1, 0, 1]]) * scale).tolist()
        xs = (torch.arange(size) + 0.5)[None, :]
        ys = (torch.arange(size) + 0.5)[:, None]
        masks[i] = ((xs >= x0) & (xs < (x0 + x1) / 2) & (ys >= y0) & (ys < y1)).float()
    box_masks = crop_masks_to_boxes(masks, boxes, margin, grid=28)
    assert box_masks.shape == (2, 28, 28)
    assert float(box_masks[:, 2:-2, 2:12].min()) > 0.95 and float(box_masks[:, 2:-2, 16:].max()) < 0.05
    assert crop_masks_to_boxes(torch.zeros(0, 8, 8), torch.zeros(0, 4), margin, 28).shape == (0, 28, 28)


def test_mask_head_learns_a_fixed_batch_and_mirror_averages_exactly() -> None:
    torch.manual_seed(3)
    config = ViewpointModelConfig(crop_size=64, hidden=32, dropout=0.0, mask_size=16)
    model = ViewpointNet(config, len(CATEGORIES)).train()
    crops = torch.rand(4, 3, 64, 64)
    labels, rays = torch.tensor([1, 2, 3, 4]), torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    targets = torch.zeros(4, 16, 16)
    targets[:, 4:12, 2:9] = 1.0
    assert model(crops, labels, rays).masks.shape == (4, 16, 16)
    losses = _fit_fixed_batch(model, lambda: mask_loss(model(crops, labels, rays).masks, targets))
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    mirrored_rays = rays * torch.tensor([-1.0, 1.0, 1.0])
    with torch.no_grad():
        averaged = mirror_averaged_outputs(model, crops, labels, rays).masks
        of_mirror = mirror_averaged_outputs(model, crops.flip(-1), labels, mirrored_rays).masks
    torch.testing.assert_close(of_mirror, averaged.flip(-1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="mask_size"):
        ViewpointModelConfig(crop_size=64, mask_size=4)


def test_mask_pooling_starts_at_the_network_without_it_and_weighs_the_masked_cells() -> None:
    torch.manual_seed(5)
    plain = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, dropout=0.0, mask_size=16), len(CATEGORIES))
    pooling = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, dropout=0.0, mask_size=16, mask_pooling=True),
                           len(CATEGORIES))
    missing = pooling.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["mask_pool.weight"]
    crops, labels = torch.rand(4, 3, 64, 64), torch.tensor([1, 2, 3, 4])
    rays = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    plain.eval(), pooling.eval()
    with torch.no_grad():
        before, after = plain(crops, labels, rays), pooling(crops, labels, rays)
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=0)  # zero-initialised: the same network
    # the pooled vector: the cells under the mask, the others at the floor weight
    features = torch.zeros(1, 2, 2, 2)
    features[0, 0, 0, 0], features[0, 1, 1, 1] = 10.0, 4.0  # channel 0 in the top-left cell, 1 bottom-right
    logits = torch.full((1, 8, 8), -30.0)
    logits[0, :4, :4] = 30.0  # the mask covers the top-left cell only
    pooled = ViewpointNet.mask_pooled(features, logits)[0]
    floor = MASK_POOLING_FLOOR
    torch.testing.assert_close(pooled, torch.tensor([10.0 * (1 + floor), 4.0 * floor]) / (1 + 4 * floor))
    # the rotation losses train mask_pool but leave the mask head to its own loss
    pooling.train()
    out = pooling(crops, labels, rays)
    out.logits.square().sum().backward()
    assert float(pooling.mask_pool.weight.grad.abs().sum()) > 0.0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in pooling.mask_head.parameters())
    with pytest.raises(ValueError, match="mask_pooling needs the mask head"):
        ViewpointModelConfig(mask_pooling=True)


def test_stage_with_a_mask_head_gives_box_masks() -> None:
    torch.manual_seed(4)
    model = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, mask_size=16), len(CATEGORIES)).eval()
    stage = ViewpointStage(model, CATEGORIES, k=2, symmetries={}, mask_grid=28)
    image = torch.rand(3, 120, 160)
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0], [90.0, 30.0, 150.0, 70.0]])
    k = torch.tensor([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])
    out = stage.predict(image, boxes, torch.tensor([1, 2]), k)
    assert all(h.box_mask.shape == (28, 28) and 0.0 <= h.box_mask.min() <= h.box_mask.max() <= 1.0 for h in out)
    with torch.no_grad():
        crops = crop_boxes(image, boxes, 64, model.config.crop_margin)
        rays = crop_rays(boxes.double(), k.double()).float()
        expected = crop_masks_to_boxes(mirror_averaged_outputs(model, crops, torch.tensor([1, 2]), rays).masks.sigmoid(),
                                       boxes, model.config.crop_margin, 28)
    np.testing.assert_allclose(out[1].box_mask, expected[1].numpy(), atol=1e-6)
