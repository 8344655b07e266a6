"""Ray-cast renderer, backgrounds and ground-truth annotations on analytic cases (no CAD library)."""

import numpy as np
import pytest
import trimesh

from scene3d_ros.geometry import (
    CameraIntrinsics,
    canonicalize_rotation,
    matrix_to_quaternion,
    quaternion_to_matrix,
    viewpoint_rotation,
)
from scene3d_ros.world.annotations import OCCLUDED_FRACTION, TRUNCATED_FRACTION, annotate
from scene3d_ros.world.backgrounds import BACKGROUND_KINDS, BackgroundSpec, render_background
from scene3d_ros.world.renderer import (
    Light,
    Material,
    Renderer,
    RenderObject,
    apply_camera_effects,
    pixel_rays,
    render_depth,
)
from scene3d_ros.world.scene_sampler import Scene, SceneObject

BOX_EXTENTS = np.array([0.4, 0.6, 0.3])


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


@pytest.fixture(scope="module")
def box():
    return trimesh.creation.box(extents=BOX_EXTENTS)


def _mask_box(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


def _analytic_pixel_box(uv):
    """Tight box of the pixels whose centres (u + 0.5) fall inside [umin, umax]."""
    x0 = int(np.ceil(uv[:, 0].min() - 0.5))
    y0 = int(np.ceil(uv[:, 1].min() - 0.5))
    x1 = int(np.floor(uv[:, 0].max() - 0.5)) + 1
    y1 = int(np.floor(uv[:, 1].max() - 0.5)) + 1
    return x0, y0, x1, y1


@pytest.mark.parametrize("cx,cy", [(128.0, 96.0), (101.3, 130.7)])
def test_box_facing_camera_has_analytic_depth_and_extent(renderer, box, cx, cy):
    k = CameraIntrinsics(300.0, 310.0, cx, cy, 256, 192)
    t = np.array([0.05, -0.02, 3.0])
    out = renderer.render([RenderObject(box, np.eye(3), t)], k)
    mask = out.instance == 0
    assert out.depth.dtype == np.float32 and out.rgb.dtype == np.uint8 and out.rgb.shape == (192, 256, 3)
    # the front face z = t_z - extent_z / 2 is perpendicular to the optical axis: z-depth is constant
    np.testing.assert_allclose(out.depth[mask], t[2] - BOX_EXTENTS[2] / 2, atol=1e-5)
    assert np.all(out.depth[~mask] == 0) and np.all(out.instance[~mask] == -1)
    # mask extent == projection of the front face corners (pixel centres at u + 0.5)
    front = trimesh.bounds.corners(box.bounds)
    front = front[front[:, 2] < 0] + t
    expected = _analytic_pixel_box(k.project(front))
    assert _mask_box(mask) == expected
    # area = pixel centres inside the projected rectangle
    x0, y0, x1, y1 = expected
    assert mask.sum() == (x1 - x0) * (y1 - y0)


def test_rotated_box_mask_extent_matches_projected_corners(renderer, box):
    k = CameraIntrinsics(280.0, 280.0, 131.0, 122.0, 256, 256)
    for az, el, ip in [(30.0, 20.0, 5.0), (200.0, -8.0, -12.0), (95.0, 55.0, 0.0)]:
        rotation = viewpoint_rotation(az, el, ip)
        t = np.array([0.1, 0.05, 2.5])
        out = renderer.render([RenderObject(box, rotation, t)], k)
        corners = box.vertices @ rotation.T + t
        got = np.array(_mask_box(out.instance == 0))
        assert np.all(np.abs(got - np.array(_analytic_pixel_box(k.project(corners)))) <= 1)
        # every object pixel's depth back-projects onto the box surface
        v, u = np.nonzero(out.instance == 0)
        points = k.backproject(np.stack([u + 0.5, v + 0.5], axis=1), out.depth[v, u])
        local = (points - t) @ rotation  # object frame
        assert np.all(np.abs(local) <= BOX_EXTENTS / 2 + 1e-4)
        assert np.all(np.isclose(np.abs(local), BOX_EXTENTS / 2, atol=1e-4).any(axis=1))


def test_rays_go_through_pixel_centres():
    k = CameraIntrinsics(100.0, 200.0, 10.0, 20.0, 8, 6)
    rays = pixel_rays(k)
    assert rays.shape == (6, 8, 6)
    np.testing.assert_allclose(rays[2, 3, 3:], [(3.5 - 10.0) / 100.0, (2.5 - 20.0) / 200.0, 1.0])
    np.testing.assert_allclose(rays[..., :3], 0.0)
    # an extended region outside the image continues the same grid
    np.testing.assert_allclose(pixel_rays(k, -2, -1, 5, 4)[3, 5, 3:], rays[2, 3, 3:])


def test_render_depth_matches_scene_render_and_analytic_depth(renderer, box):
    k = CameraIntrinsics(150.0, 150.0, 60.0, 66.0, 128, 128)
    rotation = viewpoint_rotation(40.0, 25.0, 10.0)
    t = np.array([0.03, 0.02, 2.0])
    depth = render_depth(box, rotation, t, k)
    scene_depth = renderer.render([RenderObject(box, rotation, t)], k, amodal=False).depth
    assert depth.shape == (128, 128) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, scene_depth, atol=1e-4)
    facing = render_depth(box, np.eye(3), np.array([0.0, 0.0, 2.0]), k)
    np.testing.assert_allclose(facing[facing > 0], 2.0 - BOX_EXTENTS[2] / 2, atol=1e-5)


def test_nearest_object_wins_and_shading_follows_the_light(renderer, box):
    k = CameraIntrinsics(250.0, 250.0, 128.0, 128.0, 256, 256)
    front = RenderObject(box, np.eye(3), np.array([0.0, 0.0, 2.0]), Material(colour=(1.0, 0.0, 0.0)))
    back = RenderObject(box, np.eye(3), np.array([0.5, 0.0, 4.0]), Material(colour=(0.0, 0.0, 1.0)))
    towards = Light(direction=(0.0, 0.0, -1.0), ambient=0.2, diffuse=0.6, specular=0.0)
    out = renderer.render([back, front], k, background=np.zeros((256, 256, 3), np.uint8), light=towards)
    assert out.instance[128, 128] == 1 and out.instance[128, 165] == 0
    assert tuple(out.rgb[128, 128]) == (204, 0, 0)  # (ambient + diffuse * cos 0) * albedo
    grazing = Light(direction=(1.0, 0.0, 0.0), ambient=0.2, diffuse=0.6, specular=0.0)
    side_lit = renderer.render([front], k, light=grazing)
    assert tuple(side_lit.rgb[128, 128]) == (51, 0, 0)  # face normal perpendicular to the light
    assert tuple(side_lit.rgb[0, 0]) == (128, 128, 128)  # default background


def _scene(objects, k):
    return Scene(intrinsics=k, background=BackgroundSpec("gradient", 0), light=Light(),
                 objects=tuple(objects))


def _render_and_annotate(renderer, box, objects, k):
    scene = _scene(objects, k)
    rendered = renderer.render([RenderObject(box, o.rotation, o.translation) for o in scene.objects], k)
    return scene, rendered, annotate(scene, rendered)


def test_occlusion_and_truncation_flags_on_constructed_scenes(renderer, box):
    k = CameraIntrinsics(250.0, 250.0, 128.0, 128.0, 256, 256)

    def obj(t):
        return SceneObject("box", "car", "none", np.eye(3), np.asarray(t, dtype=float))

    # a lone centred object: neither occluded nor truncated, everything visible
    _, rendered, (lone,) = _render_and_annotate(renderer, box, [obj([0.0, 0.0, 3.0])], k)
    assert not lone.occluded and not lone.truncated and not lone.difficult
    assert lone.visible_fraction == 1.0 and lone.visible_pixels == lone.amodal_pixels
    x0, y0, x1, y1 = lone.box
    assert x0 <= lone.projected_centre[0] < x1 and y0 <= lone.projected_centre[1] < y1

    # two boxes, one in front of the other: the back one is occluded, the front one not
    _, rendered, anns = _render_and_annotate(renderer, box, [obj([0.0, 0.0, 4.0]), obj([0.15, 0.0, 2.5])], k)
    back, front = anns
    assert back.occluded and not front.occluded and not back.truncated and not front.truncated
    assert back.visible_fraction < 1.0 - OCCLUDED_FRACTION and front.visible_fraction == 1.0
    assert back.amodal_pixels > back.visible_pixels

    # centred on the left border: truncated, about half of the amodal area outside
    _, rendered, (cut,) = _render_and_annotate(renderer, box, [obj([-128.0 / 250.0 * 3.0, 0.0, 3.0])], k)
    assert cut.truncated and not cut.occluded
    assert cut.box[0] == 0 and 0.35 < cut.visible_fraction < 0.65
    assert cut.amodal_box[0] < 0 < cut.amodal_box[2]
    assert (cut.amodal_pixels - cut.visible_pixels) / cut.amodal_pixels > TRUNCATED_FRACTION


def test_amodal_count_equals_render_on_an_enlarged_canvas(renderer, box):
    k = CameraIntrinsics(220.0, 220.0, 100.0, 90.0, 200, 160)
    big = CameraIntrinsics(220.0, 220.0, 100.0 + 200, 90.0 + 160, 600, 480)
    rotation = viewpoint_rotation(60.0, 30.0, 10.0)
    objects = [RenderObject(box, rotation, np.array([0.75, 0.5, 2.2])),
               RenderObject(box, np.eye(3), np.array([0.5, 0.4, 1.5]))]
    out = renderer.render(objects, k)
    for i, obj in enumerate(objects):
        alone = renderer.render([obj], big, amodal=False).instance == 0
        info = out.amodal[i]
        assert abs(info.pixels - alone.sum()) <= 2
        assert abs(info.in_image_pixels - alone[160:320, 200:400].sum()) <= 2
        x0, y0, x1, y1 = _mask_box(alone)
        assert np.all(np.abs(np.array(info.box) - np.array([x0 - 200, y0 - 160, x1 - 200, y1 - 160])) <= 1)
    assert out.amodal[0].hidden_pixels > 0 and out.amodal[1].hidden_pixels == 0


@pytest.mark.parametrize("symmetry", ["none", "c2", "c4", "continuous"])
def test_annotation_quaternion_is_canonical(renderer, box, symmetry):
    k = CameraIntrinsics(250.0, 250.0, 128.0, 128.0, 256, 256)
    rotation = viewpoint_rotation(250.0, 20.0, -10.0)
    scene_obj = SceneObject("box", "bottle", symmetry, rotation, np.array([0.0, 0.0, 3.0]))
    _, _, (ann,) = _render_and_annotate(renderer, box, [scene_obj], k)
    q = np.array(ann.quaternion)
    assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-9
    canonical = canonicalize_rotation(rotation, symmetry)
    np.testing.assert_allclose(q, matrix_to_quaternion(canonical), atol=1e-9)
    np.testing.assert_allclose(quaternion_to_matrix(q), canonical, atol=1e-9)
    np.testing.assert_allclose(np.array(ann.rotation), rotation)
    assert ann.label == 4 and ann.category == "bottle"


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_backgrounds_are_deterministic_images(kind):
    a = render_background(BackgroundSpec(kind, 11), 96, 64)
    b = render_background(BackgroundSpec(kind, 11), 96, 64)
    c = render_background(BackgroundSpec(kind, 12), 96, 64)
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 1.0  # not a flat colour


def test_background_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown background kind"):
        BackgroundSpec("marble", 0)


def test_camera_effects_are_deterministic():
    image = np.full((32, 32, 3), 100, np.uint8)
    a = apply_camera_effects(image, 5, noise_std=3.0, blur_radius=0.5)
    assert np.array_equal(a, apply_camera_effects(image, 5, noise_std=3.0, blur_radius=0.5))
    assert not np.array_equal(a, image) and abs(float(a.mean()) - 100) < 1
    assert np.array_equal(apply_camera_effects(image, 5), image)
