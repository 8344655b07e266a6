"""Scene sampler on the real CAD library: determinism, config, and ground truth consistency."""

import numpy as np
import pytest

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError, dataclass_from_dict, load_config
from scene3d_ros.data.shards import GenerateConfig, scene_rng
from scene3d_ros.geometry import (
    canonicalize_rotation,
    matrix_to_quaternion,
    rotation_to_viewpoint,
    viewpoint_rotation,
)
from scene3d_ros.paths import config_dir
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig, oriented_boxes_intersect, sample_scene


@pytest.fixture(scope="module")
def library():
    return ensure_cad_library()


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def test_yaml_config_maps_onto_the_dataclass_defaults():
    raw = load_config(config_dir() / "generate_data.yaml")
    config = dataclass_from_dict(GenerateConfig, raw)
    assert config.scene == SceneConfig()  # the YAML documents the defaults
    assert config.output.num_scenes > 0 and config.output.scenes_per_shard > 0
    override = load_config(config_dir() / "generate_data.yaml", ["scene.image_sizes=[[640,480]]"])
    assert dataclass_from_dict(GenerateConfig, override).scene.image_sizes == ((640, 480),)


@pytest.mark.parametrize("bad", [{"num_objects_range": [3, 1]}, {"elevation_deg_range": [-100, 10]},
                                 {"category_weights": {"person": 1.0}}, {"background_kinds": ["marble"]},
                                 {"image_sizes": [[0, 10]]}, {"fov": 40}])
def test_invalid_scene_config_is_rejected(bad):
    with pytest.raises(ConfigError):
        dataclass_from_dict(SceneConfig, bad)


def test_oriented_box_intersection():
    eye, ext = np.eye(3), np.array([1.0, 1.0, 1.0])
    assert oriented_boxes_intersect(eye, np.zeros(3), ext, eye, np.array([0.9, 0.0, 0.0]), ext)
    assert not oriented_boxes_intersect(eye, np.zeros(3), ext, eye, np.array([1.1, 0.0, 0.0]), ext)
    rot45 = viewpoint_rotation(45.0, 0.0, 0.0)
    # a 45-deg rotated cube reaches sqrt(2)/2 from its centre along x
    assert oriented_boxes_intersect(eye, np.zeros(3), ext, rot45, np.array([1.15, 0.0, 0.0]), ext)
    assert not oriented_boxes_intersect(eye, np.zeros(3), ext, rot45, np.array([1.25, 0.0, 0.0]), ext)


def _scene_dict(scene):
    return scene.to_dict()


def test_sampling_is_deterministic_in_the_generator_state(library):
    config = SceneConfig()
    a = sample_scene(np.random.default_rng(5), library, config)
    b = sample_scene(np.random.default_rng(5), library, config)
    c = sample_scene(np.random.default_rng(6), library, config)
    assert _scene_dict(a) == _scene_dict(b)
    assert _scene_dict(a) != _scene_dict(c)


def test_sampled_scenes_follow_the_config(library):
    config = SceneConfig(image_sizes=((256, 256), (640, 480)), num_objects_range=(2, 4),
                         elevation_deg_range=(0.0, 30.0), inplane_deg_range=(-5.0, 5.0),
                         hfov_deg_range=(40.0, 50.0))
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(40):
        scene = sample_scene(rng, library, config)
        k = scene.intrinsics
        sizes.add((k.width, k.height))
        hfov = np.degrees(2 * np.arctan(k.width / (2 * k.fx)))
        assert 40.0 - 1e-6 <= hfov <= 50.0 + 1e-6
        assert abs(k.cx - k.width / 2) <= 0.03 * k.width + 1e-9
        assert abs(k.cy - k.height / 2) <= 0.03 * k.height + 1e-9
        assert 1 <= len(scene.objects) <= 4  # objects that do not fit in 3D are skipped
        for obj in scene.objects:
            _, elevation, inplane = rotation_to_viewpoint(obj.rotation)
            assert -1e-6 <= elevation <= 30.0 + 1e-6 and abs(inplane) <= 5.0 + 1e-6
            model = library.get(obj.model_id)
            assert model.category == obj.category and model.symmetry == obj.symmetry
            vertices = library.mesh(obj.model_id).vertices @ obj.rotation.T + obj.translation
            assert vertices[:, 2].min() > 0  # entirely in front of the camera
    assert sizes == {(256, 256), (640, 480)}


def test_category_weights_select_categories(library):
    present = [c for c in CATEGORIES if library.by_category(c)]
    config = SceneConfig(category_weights={present[0]: 1.0})
    rng = np.random.default_rng(1)
    for _ in range(10):
        assert {o.category for o in sample_scene(rng, library, config).objects} == {present[0]}


def _mask_box(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] + 1), int(rows[-1] + 1))


@pytest.mark.parametrize("size,count", [((256, 256), 24), ((640, 480), 4)])
def test_ground_truth_agrees_with_masks_boxes_and_poses(library, renderer, size, count):
    config = SceneConfig(image_sizes=(size,))
    seen_truncated = seen_occluded = 0
    for i in range(count):
        annotated = generate_annotated_scene(scene_rng(123, i), library, config, renderer)
        rendered, scene = annotated.rendered, annotated.scene
        k = scene.intrinsics
        assert rendered.rgb.shape == (size[1], size[0], 3) and rendered.instance.shape == (size[1], size[0])
        assert np.array_equal(rendered.depth > 0, rendered.instance >= 0)
        ids = {a.instance_id for a in annotated.annotations}
        assert set(np.unique(rendered.instance)) - {-1} == ids  # every visible object is annotated
        for ann in annotated.annotations:
            mask = rendered.instance == ann.instance_id
            obj = scene.objects[ann.instance_id]
            assert ann.box == _mask_box(mask)  # the tight box of the visible mask
            x0, y0, x1, y1 = ann.box
            assert mask.sum() == ann.visible_pixels == mask[y0:y1, x0:x1].sum()
            assert 0 < ann.visible_fraction <= 1.0 and ann.amodal_pixels >= ann.visible_pixels
            u, v = k.project(obj.translation)[0]
            assert np.allclose((u, v), ann.projected_centre)
            np.testing.assert_allclose(k.matrix @ obj.translation / obj.translation[2], [u, v, 1.0])
            if not ann.truncated and not ann.occluded:
                assert x0 - 1 <= u <= x1 + 1 and y0 - 1 <= v <= y1 + 1
            ax0, ay0, ax1, ay1 = ann.amodal_box  # the amodal box contains the visible one
            assert ax0 <= x0 and ay0 <= y0 and x1 <= ax1 and y1 <= ay1
            inside = (ax0 >= 0 and ay0 >= 0 and ax1 <= size[0] and ay1 <= size[1])
            assert not (ann.truncated and inside)
            q = np.array(ann.quaternion)
            assert q[0] >= 0
            canonical = canonicalize_rotation(obj.rotation, obj.symmetry)
            np.testing.assert_allclose(q, matrix_to_quaternion(canonical))
            assert ann.label == CATEGORIES.index(ann.category) + 1
            # depth is the optical z of the object's surface: within its bounding sphere
            radius = 0.5 * np.linalg.norm(library.get(obj.model_id).extents)
            assert np.all(np.abs(rendered.depth[mask] - obj.translation[2]) <= radius + 1e-3)
            seen_truncated += ann.truncated
            seen_occluded += ann.occluded
    if count >= 20:
        assert seen_truncated > 0 and seen_occluded > 0  # the default config produces both
