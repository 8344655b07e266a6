"""Networks 1 and 2: rotation/translation math, losses, heads, shared layers, backbone weights, training."""

import logging

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError
from scene3d_ros.geometry import CameraIntrinsics, canonical_quaternion, quaternion_to_matrix
from scene3d_ros.model import ModelConfig, build_model, load_model_config, model_config_from_dict
from scene3d_ros.model.backbone import build_backbone, load_mobilenet_v2_imagenet, mobilenet_v2_weights_path
from scene3d_ros.model.config import BackboneConfig
from scene3d_ros.model.losses import pose_loss, rotation_loss, symmetry_codes, triplet_loss
from scene3d_ros.model.network import IntrinsicsTransform
from scene3d_ros.model.rotations import (
    allocentric_to_egocentric,
    canonicalize_quaternion,
    egocentric_to_allocentric,
    quaternion_multiply,
    ray_quaternion,
    symmetry_quaternions,
)
from scene3d_ros.model.rotations import quaternion_to_matrix as torch_quaternion_to_matrix
from scene3d_ros.model.translation import decode_translation, encode_translation, resize_intrinsics
from scene3d_ros.world.depth_views import BACKGROUND, object_depth_view, view_silhouette
from scene3d_ros.world.renderer import render_depth

torch.set_num_threads(2)
RANDOM_QUATERNIONS = torch.from_numpy(canonical_quaternion(Rotation.random(100, random_state=5).as_quat()[:, [3, 0, 1, 2]]))
RANDOM_TRANSLATIONS = torch.from_numpy(np.random.default_rng(2).uniform([-3, -2, 1], [3, 2, 20], size=(100, 3)))

TINY = {
    "backbone": {"name": "mobilenet_v2"},
    "detector": {"min_size": [128], "max_size": 160, "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 60,
                 "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 30, "rpn_batch_size_per_image": 64,
                 "box_batch_size_per_image": 32, "box_detections_per_img": 5, "box_score_thresh": 0.0,
                 "mask_head_layers": [32]},
    "pose": {"trunk_fc_layers": [128]},
    "descriptor": {"hidden": 64},
    "depth_encoder": {"growth_rate": 8, "block_config": [2, 2], "num_init_features": 16, "view_size_px": 32},
}


def tiny_config(**sections) -> ModelConfig:
    data = {key: dict(value) for key, value in TINY.items()}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return model_config_from_dict(data)


# --------------------------------------------------------------------------- rotations
def test_torch_quaternion_helpers_agree_with_geometry():
    q = torch.randn(50, 4, dtype=torch.float64)
    np.testing.assert_allclose(canonicalize_quaternion(q).numpy(), canonical_quaternion(q.numpy()), atol=1e-12)
    ties = torch.tensor([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -0.6, 0.8]], dtype=torch.float64)
    np.testing.assert_allclose(canonicalize_quaternion(ties).numpy(), canonical_quaternion(ties.numpy()))
    np.testing.assert_allclose(torch_quaternion_to_matrix(RANDOM_QUATERNIONS).numpy(),
                               quaternion_to_matrix(RANDOM_QUATERNIONS.numpy()), atol=1e-12)
    a, b = RANDOM_QUATERNIONS[:50], RANDOM_QUATERNIONS[50:]
    np.testing.assert_allclose(torch_quaternion_to_matrix(quaternion_multiply(a, b)).numpy(),
                               quaternion_to_matrix(a.numpy()) @ quaternion_to_matrix(b.numpy()), atol=1e-12)


def test_ray_rotation_turns_the_optical_axis_onto_the_ray():
    r_ray = torch_quaternion_to_matrix(ray_quaternion(RANDOM_TRANSLATIONS))
    direction = RANDOM_TRANSLATIONS / RANDOM_TRANSLATIONS.norm(dim=1, keepdim=True)
    np.testing.assert_allclose((r_ray @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).numpy(), direction.numpy(),
                               atol=1e-12)
    on_axis = ray_quaternion(torch.tensor([0.0, 0.0, 5.0]))
    np.testing.assert_allclose(on_axis.numpy(), [1.0, 0.0, 0.0, 0.0])


def test_allocentric_egocentric_round_trip_and_definition():
    q_allo = egocentric_to_allocentric(RANDOM_QUATERNIONS, RANDOM_TRANSLATIONS)
    assert torch.all(q_allo[:, 0] >= 0)
    back = allocentric_to_egocentric(q_allo, RANDOM_TRANSLATIONS)
    np.testing.assert_allclose(back.numpy(), RANDOM_QUATERNIONS.numpy(), atol=1e-12)
    # egocentric = R_ray @ allocentric
    r_ray = torch_quaternion_to_matrix(ray_quaternion(RANDOM_TRANSLATIONS))
    np.testing.assert_allclose(torch_quaternion_to_matrix(RANDOM_QUATERNIONS).numpy(),
                               (r_ray @ torch_quaternion_to_matrix(q_allo)).numpy(), atol=1e-12)


def test_allocentric_pose_is_the_scene_rotated_about_the_camera_centre():
    """The object at t with R_ego, rotated by R_ray^T about the camera, is the object at (0, 0, |t|)
    with R_allo: the two images differ only by a camera rotation (what an ROI crop undoes)."""
    points = torch.randn(20, 3, dtype=torch.float64)
    for q, t in zip(RANDOM_QUATERNIONS[:10], RANDOM_TRANSLATIONS[:10], strict=True):
        r_ego = torch_quaternion_to_matrix(q)
        r_allo = torch_quaternion_to_matrix(egocentric_to_allocentric(q, t))
        r_ray = torch_quaternion_to_matrix(ray_quaternion(t))
        seen = (points @ r_ego.T + t) @ r_ray  # R_ray^T (R p + t)
        centred = points @ r_allo.T + torch.tensor([0.0, 0.0, float(t.norm())], dtype=torch.float64)
        np.testing.assert_allclose(seen.numpy(), centred.numpy(), atol=1e-12)


def test_symmetry_groups_are_rotations_about_up():
    assert symmetry_quaternions("none").shape == (1, 4)
    c4 = torch_quaternion_to_matrix(symmetry_quaternions("c4", dtype=torch.float64))
    angles = torch.rad2deg(torch.atan2(c4[:, 1, 0], c4[:, 0, 0]))
    np.testing.assert_allclose(angles.numpy(), [0.0, 90.0, 180.0, -90.0], atol=1e-9)
    np.testing.assert_allclose(c4[:, 2, 2].numpy(), 1.0)
    assert symmetry_quaternions("continuous", 36).shape == (36, 4)
    with pytest.raises(ValueError, match="unknown symmetry"):
        symmetry_quaternions("c3")


# --------------------------------------------------------------------------- translation
def _projected_box(k: CameraIntrinsics, corners_cam: np.ndarray) -> np.ndarray:
    uv = k.project(corners_cam)
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def test_translation_encoding_is_the_same_for_two_cameras():
    k1 = CameraIntrinsics(300.0, 300.0, 160.0, 120.0, 320, 240)
    k2 = CameraIntrinsics(1100.0, 1050.0, 330.0, 250.0, 640, 480)  # other focal, aspect, centre, size
    mesh = trimesh.creation.box(extents=(0.8, 0.5, 0.4))
    rotation = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
    t = np.array([0.12, -0.05, 2.5])
    corners = np.asarray(mesh.vertices) @ rotation.T + t
    # analytic boxes: the encodings agree exactly
    t_batch = torch.tensor(t[None])
    encoded = [encode_translation(t_batch, torch.tensor(_projected_box(k, corners)[None]), torch.tensor(k.matrix))
               for k in (k1, k2)]
    np.testing.assert_allclose(encoded[0].numpy(), encoded[1].numpy(), atol=1e-9)
    # rendered boxes (pixel rounding): they agree up to about one pixel over the box size
    rendered = []
    for k in (k1, k2):
        depth = render_depth(mesh, rotation, t, k)
        rows, cols = np.flatnonzero((depth > 0).any(axis=1)), np.flatnonzero((depth > 0).any(axis=0))
        box = torch.tensor([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]], dtype=torch.float64)
        enc = encode_translation(t_batch, box, torch.tensor(k.matrix))
        rendered.append(enc)
        width = float(box[0, 2] - box[0, 0])
        np.testing.assert_allclose(decode_translation(enc, box, torch.tensor(k.matrix)).numpy(), t[None], atol=1e-9)
        assert abs(float(enc[0, 2] - encoded[0][0, 2])) < 2.0 / width
    np.testing.assert_allclose(rendered[0].numpy(), rendered[1].numpy(), atol=2.0 / 60)


def test_translation_decode_inverts_encode():
    boxes = torch.tensor([[10.0, 20.0, 110.0, 90.0]]).expand(100, 4).double()
    k = torch.tensor([[500.0, 0.0, 320.0], [0.0, 480.0, 240.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    encoded = encode_translation(RANDOM_TRANSLATIONS, boxes, k)
    np.testing.assert_allclose(decode_translation(encoded, boxes, k).numpy(), RANDOM_TRANSLATIONS.numpy(), rtol=1e-12)


def test_transform_resizes_intrinsics_like_boxes():
    transform = IntrinsicsTransform(160, 400, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    k = torch.tensor([[280.0, 0.0, 170.0], [0.0, 270.0, 115.0], [0.0, 0.0, 1.0]])
    boxes = torch.tensor([[50.0, 40.0, 150.0, 130.0]])
    t = torch.tensor([[0.1, 0.2, 3.0]])
    target = {"boxes": boxes, "labels": torch.tensor([1]), "K": k}
    images, targets, intrinsics = transform([torch.rand(3, 240, 320)], [target], [k])
    assert images.image_sizes == [(160, 213)]
    assert target["K"] is k  # the caller's target is untouched
    np.testing.assert_allclose(targets[0]["K"].numpy(), intrinsics[0].numpy())
    np.testing.assert_allclose(intrinsics[0].numpy(), resize_intrinsics(k, (240, 320), (160, 213)).numpy())
    np.testing.assert_allclose(encode_translation(t, targets[0]["boxes"], targets[0]["K"]).numpy(),
                               encode_translation(t, boxes, k).numpy(), atol=1e-5)


# --------------------------------------------------------------------------- losses
def test_rotation_loss_hand_values_and_symmetries():
    identity = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).double()
    h = 0.5 ** 0.5
    quarter_turn = torch.tensor([[h, 0.0, 0.0, h]]).double()  # 90 deg about up
    expected = (1 - h) ** 2 + h**2  # = 2 - sqrt(2)
    for name, value in [("none", expected), ("c2", expected), ("c4", 0.0), ("continuous", 0.0)]:
        loss = rotation_loss(identity, quarter_turn, symmetry_codes([name], 1))
        assert float(loss) == pytest.approx(value, abs=1e-12), name
    assert float(rotation_loss(identity, -quarter_turn)) == pytest.approx(expected)  # -q is the same rotation
    off_grid = torch.tensor([[np.cos(np.radians(47.5)), 0.0, 0.0, np.sin(np.radians(47.5))]]).double()  # 95 deg
    loss = rotation_loss(identity, off_grid, symmetry_codes(["continuous"], 1), continuous_samples=36)
    assert float(loss) == pytest.approx(2 - 2 * np.cos(np.radians(2.5)), abs=1e-12)
    with pytest.raises(ValueError, match="unknown symmetries"):
        symmetry_codes(["c3"], 1)


def test_rotation_loss_is_continuous_across_the_canonical_sign_flip():
    # two rotations 2 degrees apart about x on either side of 180 deg: their canonical forms have
    # opposite signs (w = +-0.017), the plain squared distance would be ~4
    a = torch.tensor([[np.cos(np.radians(89.5)), np.sin(np.radians(89.5)), 0.0, 0.0]]).double()
    b = torch.tensor([[np.cos(np.radians(90.5)), np.sin(np.radians(90.5)), 0.0, 0.0]]).double()
    assert float(((a - canonicalize_quaternion(b)) ** 2).sum()) > 3.9
    expected = 2 - 2 * np.cos(np.radians(1.0))
    for name in ("none", "c2"):
        assert float(rotation_loss(a, b, symmetry_codes([name], 1))) == pytest.approx(expected, abs=1e-12)


def test_pose_loss_hand_value():
    q_pred = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    q_gt = torch.tensor([[0.8, 0.6, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    t_pred = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]])
    t_gt = torch.tensor([[0.0, 0.0, 3.0], [1.0, 2.0, 2.0]])
    # object 0: 0.2^2 + 0.6^2 = 0.4 and 4; object 1: 0 and 1
    expected = ((0.4 + 0.1 * 4.0) + (0.0 + 0.1 * 1.0)) / 2
    assert float(pose_loss(q_pred, q_gt, t_pred, t_gt)) == pytest.approx(expected)
    assert float(pose_loss(q_pred, q_gt, t_pred, t_gt, rotation_weight=2.0, translation_weight=1.0)) == \
        pytest.approx((0.8 + 4.0 + 1.0) / 2)


def test_triplet_loss_hand_values():
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    negative = torch.tensor([[2.0, 0.0], [0.5, 0.0]])
    # row 0: max(0, 1 - 4 + 1) = 0; row 1: max(0, 1 - 0.25 + 1) = 1.75
    assert float(triplet_loss(anchor, positive, negative)) == pytest.approx(0.875)
    assert float(triplet_loss(anchor, positive, negative, margin=4.0)) == pytest.approx((1.0 + 4.75) / 2)
    empty = torch.zeros(0, 2, requires_grad=True)
    loss = triplet_loss(empty, empty, empty)
    loss.backward()
    assert loss.item() == 0.0


# --------------------------------------------------------------------------- depth views
def test_depth_view_is_shape_only():
    box = trimesh.creation.box(extents=(4.0, 1.8, 1.4))
    rotation = Rotation.from_euler("zyx", [30, 10, -5], degrees=True).as_matrix()
    view = object_depth_view(box, rotation, size_px=48)
    assert view.shape == (48, 48) and view.dtype == np.float32
    hit = view < BACKGROUND
    assert 0.1 < hit.mean() < 0.9 and np.all(view[~hit] == BACKGROUND) and not hit[0, 0]
    assert view[hit].min() >= -1.0 and view[hit].max() <= 1.0
    # metric size does not matter, only shape and rotation do
    np.testing.assert_allclose(object_depth_view(box.copy().apply_scale(0.01), rotation, 48), view, atol=1e-4)
    assert np.abs(object_depth_view(box, np.eye(3), 48) - view).max() > 0.5


def test_view_silhouette_fills_the_tight_box_of_the_object():
    view = np.full((40, 40), BACKGROUND, dtype=np.float32)
    view[10:20, 5:35] = 0.2  # a 30 x 10 px object: its tight box is filled entirely
    silhouette = view_silhouette(view)
    assert silhouette.shape == (28, 28) and silhouette.dtype == np.float32
    # roi_align without pixel alignment, like Mask R-CNN's mask targets: the last row and column
    # blend half a view pixel of background in (up to three cells here: 10 px over 28 cells)
    np.testing.assert_allclose(silhouette[:-3, :-1], 1.0, atol=1e-6)
    assert 0.05 < silhouette[-1, -1] < 0.9
    view[15:20, 5:20] = BACKGROUND  # cut out the lower-left quarter of the box
    silhouette = view_silhouette(view)
    assert silhouette[:10, :-1].min() > 0.99 and silhouette[16:, :12].max() < 0.01
    assert silhouette[16:-3, 16:-1].min() > 0.99
    assert silhouette.mean() == pytest.approx(0.72, abs=0.05)  # 3/4 of the box, less the blended edge
    assert not view_silhouette(np.full((8, 8), BACKGROUND)).any()
    # a rendered view: an elongated box seen from the side fills a wide, short outline
    box = trimesh.creation.box(extents=(4.0, 1.0, 1.0))
    side = view_silhouette(object_depth_view(box, np.eye(3), 48))
    assert side.mean() > 0.9
    with pytest.raises(ValueError, match="depth view"):
        view_silhouette(np.zeros((2, 8, 8)))


# --------------------------------------------------------------------------- network
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(tiny_config())


def _scene(seed: int, size: int = 128):
    """An image of coloured rectangles on a grey background and its full target."""
    rng = np.random.default_rng(seed)
    image = torch.full((3, size, size), 0.5)
    k = torch.tensor([[150.0, 0.0, size / 2], [0.0, 150.0, size / 2], [0.0, 0.0, 1.0]])
    boxes, masks, labels, translations = [], [], [], []
    for i, (x0, y0, x1, y1) in enumerate([(10, 15, 60, 70), (70, 50, 120, 115)]):
        image[:, y0:y1, x0:x1] = torch.tensor(rng.uniform(0, 1, 3), dtype=torch.float32)[:, None, None]
        mask = torch.zeros(size, size, dtype=torch.uint8)
        mask[y0:y1, x0:x1] = 1
        masks.append(mask)
        boxes.append([x0, y0, x1, y1])
        labels.append(1 + (seed + 3 * i) % len(CATEGORIES))
        z = rng.uniform(2.0, 6.0)
        u, v = (x0 + x1) / 2 + rng.uniform(-3, 3), (y0 + y1) / 2 + rng.uniform(-3, 3)
        translations.append([(u - size / 2) / 150.0 * z, (v - size / 2) / 150.0 * z, z])
    quaternions = canonical_quaternion(Rotation.random(2, random_state=seed).as_quat()[:, [3, 0, 1, 2]])
    meshes = [trimesh.creation.box(extents=(1.0, 0.5, 0.3)), trimesh.creation.cylinder(0.3, 1.0)]
    rotations = Rotation.random(2, random_state=seed + 10).as_matrix()
    positive = np.stack([object_depth_view(meshes[i], rotations[i], 32) for i in range(2)])
    negative = np.stack([object_depth_view(meshes[1 - i], rotations[i], 32) for i in range(2)])
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.stack(masks), "quaternions": torch.tensor(quaternions, dtype=torch.float32),
        "translations": torch.tensor(translations, dtype=torch.float32), "K": k,
        "symmetries": ["none", "continuous"],
        "positive_views": torch.from_numpy(positive), "negative_views": torch.from_numpy(negative),
    }
    return image, target


def test_eval_outputs_shapes_and_canonical_quaternions(tiny_model, caplog):
    tiny_model.eval()
    image, target = _scene(0)
    with torch.no_grad():
        out = tiny_model([image, image[:, :100]], intrinsics=[target["K"], target["K"]])
    for det in out:
        n = det["boxes"].shape[0]
        assert 0 < n <= 5
        assert det["quaternions"].shape == (n, 4) and det["allocentric_quaternions"].shape == (n, 4)
        assert det["translations"].shape == (n, 3) and det["descriptors"].shape == (n, 500)
        assert det["masks"].shape[0] == n and det["box_masks"].shape == (n, 28, 28)
        np.testing.assert_allclose(det["quaternions"].norm(dim=1).numpy(), 1.0, atol=1e-5)
        assert torch.all(det["quaternions"][:, 0] >= 0) and torch.all(det["allocentric_quaternions"][:, 0] >= 0)
        assert torch.all(det["translations"][:, 2] > 0)
    # a camera with twice the focal length sees the same image at twice the depth
    k2 = target["K"].clone()
    k2[0, 0] *= 2
    k2[1, 1] *= 2
    with torch.no_grad():
        near, far = tiny_model([image], intrinsics=[target["K"]])[0], tiny_model([image], intrinsics=[k2])[0]
    np.testing.assert_allclose(far["translations"].numpy(), near["translations"].numpy() * [1.0, 1.0, 2.0], rtol=1e-4)
    # without intrinsics a default field of view is assumed, and said
    with caplog.at_level(logging.WARNING, logger="scene3d_ros.model.network"), torch.no_grad():
        tiny_model._warned_default_intrinsics = False
        assert tiny_model([image])[0]["translations"].shape[1] == 3
    assert "field of view" in caplog.text


def test_empty_targets_give_connected_zero_losses(tiny_model):
    tiny_model.train()
    image, _ = _scene(1)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 128, 128, dtype=torch.uint8), "quaternions": torch.zeros(0, 4),
             "translations": torch.zeros(0, 3), "K": torch.eye(3),
             "positive_views": torch.zeros(0, 32, 32), "negative_views": torch.zeros(0, 32, 32)}
    losses = tiny_model([image], [empty])
    for key in ("loss_rotation", "loss_translation", "loss_descriptor"):
        assert losses[key].item() == 0.0
    sum(losses.values()).backward()
    tiny_model.zero_grad()


def test_missing_pose_targets_are_named(tiny_model):
    tiny_model.train()
    image, target = _scene(2)
    del target["translations"]
    with pytest.raises(ValueError, match="translations"):
        tiny_model([image], [target])
    _, target = _scene(2)
    del target["negative_views"]
    with pytest.raises(ValueError, match="negative_views"):
        tiny_model([image], [target])


def test_training_steps_reduce_every_loss():
    torch.manual_seed(0)
    model = build_model(tiny_config()).train()
    batch = [_scene(seed) for seed in (3, 4)]
    images, targets = [b[0] for b in batch], [b[1] for b in batch]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    history = []
    for _ in range(20):
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({"total": total.item(), **{k: v.item() for k, v in losses.items()}})

    def mean(key, steps):
        return np.mean([history[i][key] for i in steps])

    for key in ("total", "loss_rotation", "loss_translation", "loss_descriptor"):
        first, last = mean(key, range(3)), mean(key, range(17, 20))
        assert last < 0.8 * first, f"{key}: {first:.4f} -> {last:.4f}"


def test_descriptor_tail_is_shared_by_both_networks(tiny_model):
    model = tiny_model
    tail = model.roi_heads.descriptor_head.tail
    assert tail is model.depth_encoder.tail
    ids = [id(p) for p in model.parameters()]
    assert len(ids) == len(set(ids))
    assert sum(id(p) in {id(q) for q in tail.parameters()} for p in model.parameters()) == len(list(tail.parameters()))
    # one step on a network-2-only loss changes what network 1's descriptor head outputs
    model.train()
    features = torch.randn(3, model.config.pose.trunk_fc_layers[-1])
    before = model.roi_heads.descriptor_head(features).detach()
    optimizer = torch.optim.SGD(model.depth_encoder.parameters(), lr=0.1)
    views = torch.rand(4, 32, 32)
    loss = model.depth_encoder(views).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = model.roi_heads.descriptor_head(features).detach()
    assert (after - before).abs().max() > 1e-6
    model.zero_grad()


def test_heads_switch_off_by_config():
    model = build_model(tiny_config(pose={"rotation": False}, descriptor={"enabled": False}))
    assert not model.roi_heads.has_rotation() and model.roi_heads.has_translation()
    assert model.depth_encoder is None and not model.roi_heads.has_descriptor()
    image, target = _scene(5)
    del target["positive_views"], target["negative_views"]
    losses = model.train()([image], [target])
    assert "loss_translation" in losses and "loss_rotation" not in losses and "loss_descriptor" not in losses
    with torch.no_grad():
        det = model.eval()([image], intrinsics=[target["K"]])[0]
    assert "translations" in det and "quaternions" not in det and "descriptors" not in det


def test_class_agnostic_heads_and_resnet18_from_scratch():
    config = tiny_config(backbone={"name": "resnet18", "weights": None},
                         pose={"class_agnostic_rotation": True, "class_agnostic_translation": True})
    model = build_model(config)
    assert isinstance(model.backbone.body.bn1, torch.nn.BatchNorm2d)  # trainable norm from scratch
    assert model.roi_heads.rotation_predictor.fc.out_features == 4
    image, target = _scene(6)
    with torch.no_grad():
        det = model.eval()([image], intrinsics=[target["K"]])[0]
    assert det["quaternions"].shape[1] == 4


# --------------------------------------------------------------------------- config and weights
def test_model_yaml_holds_the_defaults():
    assert load_model_config() == ModelConfig()
    assert load_model_config(overrides=["model.pose.class_agnostic_rotation=true"]).pose.class_agnostic_rotation


@pytest.mark.parametrize("section,bad", [
    ({"backbone": {"name": "vgg"}}, "backbone.name"),
    ({"backbone": {"name": "resnet18"}}, "no offline ImageNet weights"),
    ({"loss": {"translation_space": "pixels"}}, "translation_space"),
    ({"pose": {"rotaton": True}}, "rotaton"),
])
def test_bad_model_config_is_rejected(section, bad):
    with pytest.raises(ConfigError, match=bad):
        model_config_from_dict(section)


def test_mobilenet_imagenet_weights_load_strictly():
    backbone = build_backbone(BackboneConfig())
    state = torch.load(mobilenet_v2_weights_path(), weights_only=True)
    np.testing.assert_array_equal(backbone.body["0"][0].weight.numpy(), state["features.0.0.weight"].numpy())
    np.testing.assert_array_equal(backbone.body["18"][1].running_var.numpy(), state["features.18.1.running_var"].numpy())
    assert not backbone.body["0"][0].weight.requires_grad  # early stages stay frozen with pretrained weights


def test_mobilenet_weights_with_foreign_entries_are_rejected(tmp_path):
    backbone = build_backbone(BackboneConfig(), load_weights=False)
    state = torch.load(mobilenet_v2_weights_path(), weights_only=True)
    state["head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="head.weight"):
        load_mobilenet_v2_imagenet(backbone.body, tmp_path / "bad.pth")
    del state["head.weight"], state["features.3.conv.1.0.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_mobilenet_v2_imagenet(backbone.body, tmp_path / "missing.pth")


def test_class_outputs_of_no_detections_have_the_right_shape():
    # an image without detections gives (0, dim * classes) head outputs; selecting must not fail
    from scene3d_ros.model.pose_heads import select_class_outputs

    empty = torch.zeros(0, 4 * 13)
    assert select_class_outputs(empty, torch.zeros(0, dtype=torch.int64), 4).shape == (0, 4)


def test_detection_limits_and_input_size_are_the_models_own_settings():
    """Callers set the post-processing limits and the input size through the model (no writes into
    roi_heads / transform), and the heads run on given boxes through a public method."""
    torch.manual_seed(0)
    tiny_model = build_model(tiny_config()).eval()  # its own: the settings below stay with it
    image, target = _scene(0)
    with torch.no_grad():
        everything = tiny_model([image], intrinsics=[target["K"]])[0]
        assert len(everything["scores"]) >= 2
        tiny_model.set_detection_limits(0.0, 1)
        assert len(tiny_model([image], intrinsics=[target["K"]])[0]["scores"]) == 1
        tiny_model.set_detection_limits(float(everything["scores"].max()), 5)  # exclusive: nothing scores above
        assert len(tiny_model([image], intrinsics=[target["K"]])[0]["scores"]) == 0
        tiny_model.set_input_size(100)
        small = tiny_model.predict_with_boxes([image], [target["boxes"]], [target["labels"]], [target["K"]])[0]
        np.testing.assert_allclose(small["boxes"].numpy(), target["boxes"].numpy(), atol=1e-3)  # original pixels
    for bad in ((float("nan"), 5), (float("inf"), 5), (0.5, 0)):
        with pytest.raises(ValueError):
            tiny_model.set_detection_limits(*bad)
    with pytest.raises(ValueError, match="input size"):
        tiny_model.set_input_size(0)
    tiny_model.train()
    with pytest.raises(RuntimeError, match="inference only"):
        tiny_model.roi_heads.forward_with_given_boxes({}, [], [], [], [])
