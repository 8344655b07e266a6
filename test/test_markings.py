"""Semantic surface markings: schemes, painting in the object frame, and scenes with and without."""

import numpy as np
import pytest
import trimesh

from scene3d_ros.geometry import CameraIntrinsics, viewpoint_rotation
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.markings import SCHEMES, draw_markings, paint, scheme_for
from scene3d_ros.world.renderer import Light, Material, Renderer, RenderObject
from scene3d_ros.world.scene_sampler import SceneConfig, sample_scene


@pytest.fixture(scope="module")
def library():
    return ensure_cad_library()


def test_schemes_go_to_categories_with_a_front_and_never_to_symmetric_models():
    assert scheme_for("car", "none") == "car" and scheme_for("bus", "none") == "bus"
    assert scheme_for("train", "c2") == ""  # passenger coaches and tank wagons: both ends alike
    assert scheme_for("chair", "none") == "" and scheme_for("bottle", "continuous") == ""
    with pytest.raises(ValueError, match="unknown marking scheme"):
        draw_markings("submarine", 0)


def test_drawing_is_a_function_of_the_seed():
    assert draw_markings("car", 7) == draw_markings("car", 7)
    drawn = {draw_markings("car", seed) for seed in range(20)}
    assert len(drawn) == 20  # sizes, colours, lights on/off, presence vary
    counts = [len(draw_markings("car", seed)) for seed in range(200)]
    assert max(counts) == len(SCHEMES["car"]) and min(counts) < len(SCHEMES["car"])


def _lit_car_markings():
    """A car scheme drawing with every marking present and the lights on."""
    for seed in range(1000):
        painted = draw_markings("car", seed)
        if len(painted) == len(SCHEMES["car"]) and all(p.emissive for p in painted if "light" in p.marking.finish):
            return painted
    raise AssertionError("no seed paints every car marking with lights on")


def test_head_lights_paint_the_front_and_tail_lights_the_rear():
    painted = _lit_car_markings()
    bounds = np.array([[-2.0, -0.9, 0.0], [2.0, 0.9, 1.4]])
    # front face (+x) at headlight height near the side, the same point on the rear face, a side point
    points = np.array([[2.0, 0.65, 0.38 * 1.4], [-2.0, 0.65, 0.48 * 1.4], [0.0, 0.9, 0.4]], np.float32)
    normals = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    base = np.full((3, 3), 0.5, np.float32)
    albedo, emission, gloss = paint(painted, points, normals, bounds, "car", base.copy())
    head, tail = (p for p in painted if p.marking.finish == "head_light"), (p for p in painted
                                                                           if p.marking.finish == "tail_light")
    np.testing.assert_allclose(albedo[0], next(head).colour, rtol=1e-6)
    np.testing.assert_allclose(albedo[1], next(tail).colour, rtol=1e-6)
    assert albedo[1, 0] > 3 * albedo[1, 1]  # red
    assert emission[0].min() > 0.7 and emission[1, 0] > 0.7
    np.testing.assert_array_equal(albedo[2], base[2])  # the side is not marked
    assert gloss[2] == 1.0 and not emission[2].any()
    # the same front point with a normal facing back is not a headlight
    flipped, _, _ = paint(painted, points[:1], -normals[:1], bounds, "car", base[:1].copy())
    np.testing.assert_array_equal(flipped[0], base[0])


def test_markings_change_appearance_only(library):
    """A scene drawn from the same seed has the same objects, poses, masks and depth with and
    without markings; only the colours of marked objects differ."""
    renderer = Renderer()
    plain = SceneConfig(category_weights={"bus": 1.0, "car": 1.0}, surface_markings=False)
    marked = SceneConfig(category_weights={"bus": 1.0, "car": 1.0}, surface_markings=True)
    for seed in range(3):
        a = generate_annotated_scene(np.random.default_rng(seed), library, plain, renderer)
        b = generate_annotated_scene(np.random.default_rng(seed), library, marked, renderer)
        assert [(o.model_id, o.rotation.tolist(), o.translation.tolist()) for o in a.scene.objects] == \
            [(o.model_id, o.rotation.tolist(), o.translation.tolist()) for o in b.scene.objects]
        np.testing.assert_array_equal(a.rendered.instance, b.rendered.instance)
        np.testing.assert_array_equal(a.rendered.depth, b.rendered.depth)
        assert all(o.material.markings in ("bus", "car") for o in b.scene.objects)
        assert not (a.rendered.rgb == b.rendered.rgb).all()


def _bus_view(library, renderer, azimuth_deg, markings):
    model = next(m for m in library.by_category("bus") if m.symmetry == "none")
    mesh = library.mesh(model.model_id)
    k = CameraIntrinsics(200.0, 200.0, 80.0, 80.0, 160, 160)
    material = Material(colour=(0.6, 0.6, 0.6), secondary_colour=(0.6, 0.6, 0.6), dark_colour=(0.6, 0.6, 0.6),
                        markings=markings, marking_seed=3)
    rotation = viewpoint_rotation(azimuth_deg, 10.0, 0.0)
    t = np.array([0.0, 0.0, 2.2 * float(np.linalg.norm(model.extents))])
    out = renderer.render([RenderObject(mesh, rotation, t, material)], k, light=Light(), amodal=False)
    return out.rgb.astype(np.float64), out.instance >= 0


def test_a_marked_bus_looks_different_from_its_front_and_its_back(library):
    """Head-on and tail-on views of a bus painted in one colour: nearly the same picture without
    markings, clearly different with them."""
    renderer = Renderer()
    diffs = {}
    for markings in ("", "bus"):
        front, front_mask = _bus_view(library, renderer, 0.0, markings)
        back, back_mask = _bus_view(library, renderer, 180.0, markings)
        both = front_mask & back_mask
        diffs[markings] = np.abs(front - back)[both].mean()
    assert diffs["bus"] > 3.0 * diffs[""] + 5.0, diffs


def test_marked_and_unmarked_configs_keep_the_random_stream(library):
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    sample_scene(rng_a, library, SceneConfig(surface_markings=False))
    sample_scene(rng_b, library, SceneConfig(surface_markings=True))
    assert rng_a.random() == rng_b.random()


def test_painting_a_mesh_without_scheme_is_a_no_op():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    albedo = np.full((len(box.faces), 3), 0.3, np.float32)
    out, emission, gloss = paint((), box.triangles_center.astype(np.float32), box.face_normals.astype(np.float32),
                                 box.bounds, "", albedo.copy())
    np.testing.assert_array_equal(out, albedo)
    assert not emission.any() and (gloss == 1.0).all()
