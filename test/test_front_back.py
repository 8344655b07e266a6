"""Front/back ambiguity: the geometric half-turn / front-back mirror scores, the rendered view-vs-turned-view
comparison (depth and RGB appearance before/after surface markings), and scripts/front_back_ambiguity.py
end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from repo_scripts import load_script

from scene3d_ros.mirror import MIRROR_SYMMETRY_TOLERANCE, mirror_asymmetry, self_map_asymmetry
from scene3d_ros.world.cad_library import CadLibrary, ensure_cad_library
from scene3d_ros.world.depth_views import BACKGROUND
from scene3d_ros.world.front_back import (
    APPEARANCE_BACKGROUND,
    C2_TOLERANCE,
    DECLARED_SYMMETRY_DEVIATION,
    DISTINCT_RGB_DIFFERENCE,
    MARKING_SEEDS,
    FlipAppearanceComparison,
    compare_flipped_appearance,
    compare_flipped_views,
    flipped_rgb_difference,
    flipped_view_difference,
    front_back_asymmetry,
    front_back_mirror_asymmetry,
    half_turn_deviation,
    render_appearance_view,
    sample_viewpoints,
)
from scene3d_ros.world.markings import scheme_for
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


@pytest.fixture(scope="module")
def box() -> trimesh.Trimesh:
    return trimesh.creation.box((1.0, 0.6, 0.5))


@pytest.fixture(scope="module")
def bumped() -> trimesh.Trimesh:
    """The box with a bump on its front (+x), re-centred on its bounding box (the library's frame)."""
    bump = trimesh.creation.box((0.3, 0.3, 0.3))
    bump.apply_translation((0.6, 0.0, 0.0))  # 0.25 m in front of the box's front face (x = 0.5)
    mesh = trimesh.util.concatenate([trimesh.creation.box((1.0, 0.6, 0.5)), bump])
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


@pytest.fixture(scope="module")
def library() -> CadLibrary:
    return ensure_cad_library(progress=False)


def test_geometric_scores_tell_a_box_from_a_box_with_a_front(box, bumped):
    assert front_back_asymmetry(box) < 1.3
    assert front_back_mirror_asymmetry(box) < 1.3
    assert front_back_asymmetry(bumped) > 2.0 * C2_TOLERANCE
    assert front_back_mirror_asymmetry(bumped) > 2.0 * C2_TOLERANCE
    # the bump is centred left/right: the left/right mirror still holds, so the scores are specific
    assert mirror_asymmetry(bumped) < MIRROR_SYMMETRY_TOLERANCE
    assert C2_TOLERANCE == MIRROR_SYMMETRY_TOLERANCE  # the one tolerance the library uses


def test_half_turn_deviation_is_a_share_of_the_largest_extent(box, bumped):
    assert half_turn_deviation(box) < 1e-6
    # the bump's front face (0.25 m proud of the box) turned to the back stands 0.25 m off the box,
    # and the largest extent is 1.25 m
    assert half_turn_deviation(bumped) == pytest.approx(0.25 / 1.25, abs=0.01)
    assert half_turn_deviation(bumped, percentile=50.0) < 0.05
    with pytest.raises(ValueError, match="percentile"):
        half_turn_deviation(box, percentile=101.0)


def test_half_turn_and_front_back_mirror_are_different_maps():
    """An S-shaped mesh (two bumps at front-left and back-right) is c2-symmetric but not its
    front/back mirror image: the half turn maps it onto itself, x -> -x does not."""
    parts = [trimesh.creation.box((1.0, 0.6, 0.5))]
    for x, y in ((0.6, 0.2), (-0.6, -0.2)):
        bump = trimesh.creation.box((0.2, 0.2, 0.3))
        bump.apply_translation((x, y, 0.0))
        parts.append(bump)
    mesh = trimesh.util.concatenate(parts)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    assert front_back_asymmetry(mesh) < C2_TOLERANCE
    assert front_back_mirror_asymmetry(mesh) > C2_TOLERANCE


def test_self_map_asymmetry_refuses_a_map_that_is_not_orthogonal(box):
    with pytest.raises(ValueError, match="orthogonal"):
        self_map_asymmetry(box, np.diag([2.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="samples"):
        self_map_asymmetry(box, np.eye(3), samples=1)


def test_flipped_view_difference_by_hand():
    a = np.full((4, 4), BACKGROUND, dtype=np.float32)
    b = a.copy()
    a[0:2, 0:2] = 0.0
    b[1:3, 1:3] = 0.5
    iou, union, overlap = flipped_view_difference(a, b)
    # overlap 1 pixel of a union of 7; |0 - 1.5| x 3 + |1.5 - 0.5| x 3 + |0 - 0.5| x 1
    assert iou == pytest.approx(1.0 / 7.0)
    assert union == pytest.approx((3 * 1.5 + 3 * 1.0 + 0.5) / 7.0)
    assert overlap == pytest.approx(0.5)
    apart = np.full((4, 4), BACKGROUND, dtype=np.float32)
    apart[3, 3] = 0.0
    assert np.isnan(flipped_view_difference(a, apart)[2])
    assert flipped_view_difference(np.full((4, 4), BACKGROUND), np.full((4, 4), BACKGROUND)) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same"):
        flipped_view_difference(a, a[:3])


def test_viewpoints_follow_the_scene_sampler_ranges():
    config = SceneConfig()
    views = sample_viewpoints(200, seed=3)
    assert views.shape == (200, 3)
    for column, (low, high) in enumerate((config.azimuth_deg_range, config.elevation_deg_range,
                                          config.inplane_deg_range)):
        assert low <= views[:, column].min() and views[:, column].max() <= high
        assert views[:, column].max() - views[:, column].min() > 0.8 * (high - low)
    np.testing.assert_array_equal(views, sample_viewpoints(200, seed=3))
    assert not np.array_equal(views, sample_viewpoints(200, seed=4))
    with pytest.raises(ValueError, match="viewpoint"):
        sample_viewpoints(0)


def test_rendered_views_of_a_box_match_their_turn_and_a_bumped_box_does_not(box, bumped):
    views = sample_viewpoints(8, seed=0)
    same = compare_flipped_views(box, views, size_px=48)
    np.testing.assert_allclose(same.iou, 1.0)
    np.testing.assert_allclose(same.depth_difference, 0.0, atol=1e-6)
    np.testing.assert_allclose(same.overlap_depth_difference, 0.0, atol=1e-6)
    different = compare_flipped_views(bumped, views, size_px=48)
    assert np.median(different.iou) < 0.9
    assert np.median(different.depth_difference) > 0.2
    with pytest.raises(ValueError, match="viewpoints"):
        compare_flipped_views(box, np.zeros((0, 3)))


def test_azimuth_plus_180_shows_the_back(bumped):
    """At azimuth 0 the camera faces the front (+x): the bump stands 0.25 m proud of the box face
    around it; at azimuth 180 the flat back face has one depth."""
    from scene3d_ros.geometry import viewpoint_rotation
    from scene3d_ros.world.depth_views import object_depth_view

    front = object_depth_view(bumped, viewpoint_rotation(0.0, 0.0, 0.0), 48)
    back = object_depth_view(bumped, viewpoint_rotation(180.0, 0.0, 0.0), 48)
    # pixel (24, 24) sees the bump's centre (or the back face), (31, 31) the box face beside the bump
    assert front[31, 31] - front[24, 24] == pytest.approx(0.25 / np.linalg.norm([0.625, 0.3, 0.25]), abs=0.01)
    assert abs(back[31, 31] - back[24, 24]) < 0.01


def test_declared_symmetries_lie_within_the_c2_tolerance(library):
    """Every declared symmetry (c2, c4, continuous) contains the half turn: the score must say so."""
    declared = [m for m in library.models if m.symmetry != "none"]
    assert declared
    for m in declared:
        mesh = library.mesh(m.model_id)
        assert front_back_asymmetry(mesh, samples=2000) < C2_TOLERANCE, m.model_id
        assert half_turn_deviation(mesh) < DECLARED_SYMMETRY_DEVIATION, m.model_id


def test_script_end_to_end_on_two_models(library, tmp_path: Path):
    script = load_script("front_back_ambiguity")
    coach = next(m.model_id for m in library.models if m.category == "train" and m.symmetry == "c2")
    car = library.by_category("car")[0].model_id
    output = tmp_path / "out" / "report"
    argv = ["--models", coach, car, "--viewpoints", "4", "--size", "40", "--samples", "1500", "--output", str(output)]
    assert script.main(argv) == 0
    result = json.loads(output.with_suffix(".json").read_text())
    rows = {r["model_id"]: r for r in result["models"]}
    assert set(rows) == {coach, car}
    assert rows[coach]["declared_symmetry"] == "c2" and rows[coach]["within_c2_tolerance"]
    assert rows[coach]["median_iou"] > 0.97
    assert rows[coach]["half_turn_deviation_max"] < DECLARED_SYMMETRY_DEVIATION
    assert not rows[car]["within_c2_tolerance"] and rows[car]["half_turn_asymmetry"] > C2_TOLERANCE
    assert rows[car]["half_turn_deviation_p99"] > DECLARED_SYMMETRY_DEVIATION
    assert rows[car]["median_iou"] < rows[coach]["median_iou"]
    summary = {s["category"]: s for s in result["categories"]}
    assert set(summary) == {"train", "car", "all"}
    assert summary["all"]["models"] == 2 and summary["all"]["within_c2_tolerance"] == 1
    assert summary["train"]["c2_candidates"] == 0  # the coach is already declared c2
    assert summary["train"]["exactly_c2"] == 1 and summary["car"]["exactly_c2"] == 0
    markdown = output.with_suffix(".md").read_text()
    assert f"`{result['command']}`" in markdown and "--viewpoints 4" in result["command"]
    assert f"| {car} |" in markdown
    # appearance: the coach (declared c2) gets no markings, the car its scheme
    assert rows[coach]["marking_scheme"] == "" and rows[car]["marking_scheme"] == "car"
    assert rows[coach]["median_rgb_difference_after"] == rows[coach]["median_rgb_difference_before"]
    assert rows[coach]["share_rgb_distinct_after"] == rows[coach]["share_rgb_distinct_before"]
    assert rows[car]["median_rgb_difference_after"] > rows[car]["median_rgb_difference_before"]
    assert summary["car"]["with_markings"] == 1 and summary["train"]["with_markings"] == 0
    assert result["settings"]["marking_seeds"] == list(MARKING_SEEDS)
    assert len(result["machine"]["loadavg_start"]) == 3 and result["machine"]["wall_s"] >= 0.0
    assert "## Appearance before / after surface markings" in markdown
    with pytest.raises(KeyError, match="no_such_model"):
        script.main(["--models", "no_such_model", "--output", str(output)])


def test_flipped_rgb_difference_by_hand():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    inside_a = np.zeros((4, 4), dtype=bool)
    inside_b = inside_a.copy()
    inside_a[0:2, 0:2] = True
    inside_b[1:3, 1:3] = True
    a[1, 1] = (100, 40, 10)
    b[1, 1] = (70, 40, 40)
    b[2, 2] = (255, 255, 255)  # outside the overlap: does not count
    # overlap is the one pixel (1, 1): |100 - 70|, 0, |10 - 40| over three channels
    assert flipped_rgb_difference(a, inside_a, b, inside_b) == pytest.approx(20.0)
    assert flipped_rgb_difference(b, inside_b, a, inside_a) == flipped_rgb_difference(a, inside_a, b, inside_b)
    apart = np.zeros((4, 4), dtype=bool)
    apart[3, 3] = True
    assert np.isnan(flipped_rgb_difference(a, inside_a, b, apart))
    with pytest.raises(ValueError, match="same"):
        flipped_rgb_difference(a, inside_a, b[:3], inside_b[:3])
    with pytest.raises(ValueError, match="silhouettes"):
        flipped_rgb_difference(a, inside_a[:3], b, inside_b)
    assert FlipAppearanceComparison.share_distinct(np.array([0.0, 2.0 * DISTINCT_RGB_DIFFERENCE, np.nan])) == 0.5
    assert np.isnan(FlipAppearanceComparison.share_distinct(np.array([np.nan])))


def test_appearance_views_are_framed_alike_on_a_uniform_background(box):
    """The view and its turn show the box centred, the same size, on the uniform background."""
    from scene3d_ros.geometry import viewpoint_rotation

    renderer = Renderer(nthreads=1)
    rgb, inside = render_appearance_view(box, viewpoint_rotation(30.0, 20.0, 5.0), 48, renderer=renderer)
    turned_rgb, turned_inside = render_appearance_view(box, viewpoint_rotation(210.0, 20.0, 5.0), 48,
                                                       renderer=renderer)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8 and inside.shape == (48, 48)
    assert np.all(rgb[~inside] == APPEARANCE_BACKGROUND)
    # the box's centre lies on the optical axis (the view's centre) and its bounding sphere fits the view
    assert inside[23:25, 23:25].all()
    assert not (inside[0].any() or inside[-1].any() or inside[:, 0].any() or inside[:, -1].any())
    assert np.array_equal(inside, turned_inside)  # c2 box: the same silhouette, pixel for pixel
    # one uniform material: without markings the box's visible faces have at most three shades
    assert len(np.unique(rgb[inside].reshape(-1, 3), axis=0)) <= 4
    with pytest.raises(ValueError, match="no_such_scheme"):
        render_appearance_view(box, np.eye(3), 16, scheme="no_such_scheme", renderer=renderer)


def test_a_box_differs_from_its_turn_with_a_front_marking_and_not_without(box):
    """A plain box is c2-symmetric: uniform grey, it looks the same from a view and from its turn.
    The TV scheme paints a dark screen on its front face (+x) only: then it does not."""
    renderer = Renderer(nthreads=1)
    views = np.vstack([[0.0, 0.0, 0.0], sample_viewpoints(7, seed=0)])  # head-on first
    looks = compare_flipped_appearance(box, views, "tvmonitor", size_px=48, renderer=renderer)
    assert looks.scheme == "tvmonitor" and looks.marking_seeds == MARKING_SEEDS
    np.testing.assert_allclose(looks.before, 0.0, atol=0.5)  # ray-casting noise at most
    assert FlipAppearanceComparison.share_distinct(looks.before) == 0.0
    assert looks.after[0] > 20.0  # head-on: the front face is mostly screen, the back face is not
    assert np.median(looks.after) > DISTINCT_RGB_DIFFERENCE
    assert FlipAppearanceComparison.share_distinct(looks.after) >= 0.5
    # without a scheme "after" is "before", pixel for pixel
    plain = compare_flipped_appearance(box, views, "", size_px=48, renderer=renderer)
    np.testing.assert_array_equal(plain.after, plain.before)
    np.testing.assert_array_equal(plain.before, looks.before)
    with pytest.raises(ValueError, match="viewpoints"):
        compare_flipped_appearance(box, np.zeros((0, 3)), "")
    with pytest.raises(ValueError, match="seed"):
        compare_flipped_appearance(box, views, "tvmonitor", marking_seeds=())


def test_appearance_measure_is_deterministic_and_symmetric(bumped):
    """The same inputs give the same numbers; the pair seen from (az + 180) is the same pair in the
    other order, so the measure at the turned viewpoints equals the measure at the original ones."""
    renderer = Renderer(nthreads=1)
    views = sample_viewpoints(6, seed=1)
    looks = compare_flipped_appearance(bumped, views, "car", size_px=40, renderer=renderer)
    again = compare_flipped_appearance(bumped, views, "car", size_px=40, renderer=Renderer(nthreads=1))
    np.testing.assert_array_equal(looks.before, again.before)
    np.testing.assert_array_equal(looks.after, again.after)
    turned = compare_flipped_appearance(bumped, views + np.array([180.0, 0.0, 0.0]), "car", size_px=40,
                                        renderer=renderer)
    np.testing.assert_allclose(turned.before, looks.before, atol=0.05)
    np.testing.assert_allclose(turned.after, looks.after, atol=0.05)
    assert np.all(np.isfinite(looks.after)) and np.any(looks.after != looks.before)


def test_library_models_without_a_scheme_look_the_same_before_and_after(library):
    """A declared-c2 coach and a chair (no scheme for its category) get no markings; a car does."""
    renderer = Renderer(nthreads=1)
    views = sample_viewpoints(4, seed=0)
    coach = next(m for m in library.models if m.category == "train" and m.symmetry == "c2")
    chair = library.by_category("chair")[0]
    for model in (coach, chair):
        scheme = scheme_for(model.category, model.symmetry)
        assert scheme == "", model.model_id
        looks = compare_flipped_appearance(library.mesh(model.model_id), views, scheme, 40, renderer=renderer)
        np.testing.assert_array_equal(looks.after, looks.before)
    # the coach is exactly c2 (within the library's tolerance): its turn looks nearly the same
    coach_looks = compare_flipped_appearance(library.mesh(coach.model_id), views, "", 40, renderer=renderer)
    assert np.median(coach_looks.before) < DISTINCT_RGB_DIFFERENCE
    car = library.by_category("car")[0]
    car_looks = compare_flipped_appearance(library.mesh(car.model_id), views,
                                           scheme_for(car.category, car.symmetry), 40, renderer=renderer)
    assert np.median(car_looks.after) > np.median(car_looks.before)
