"""evaluate's side-by-side rotation report: network 1, the crop viewpoint stage and best-of-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_model import save_tiny_checkpoint

from scene3d_ros import CATEGORIES
from scene3d_ros.evaluation import Evaluator
from scene3d_ros.evaluation.viewpoint import ViewpointComparison, comparison_markdown
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.model.viewpoint import (
    ViewpointModelConfig,
    ViewpointNet,
    ViewpointStage,
    box_mask_grid_of,
    category_symmetries,
    library_shapes,
)
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


def _scene_inputs(seed: int, library, renderer: Renderer, with_masks: bool = False):
    """A rendered 160x120 scene as evaluate feeds it: annotations, image (3, H, W), K and the
    ground truth (with ``model_ids``, and the visible ``masks`` when asked)."""
    frame = generate_annotated_scene(np.random.default_rng(seed), library, SceneConfig(image_sizes=((160, 120),)),
                                     renderer)
    objects = frame.annotations
    image = torch.from_numpy(frame.rendered.rgb.copy()).permute(2, 0, 1).float().div(255.0)
    k = torch.as_tensor(frame.scene.intrinsics.matrix, dtype=torch.float32)
    gt = {"boxes": torch.tensor([o.box for o in objects], dtype=torch.float32),
          "labels": torch.tensor([o.label for o in objects]),
          "quaternions": torch.tensor([o.quaternion for o in objects], dtype=torch.float32),
          "translations": torch.tensor([o.translation for o in objects], dtype=torch.float32),
          "symmetries": [o.symmetry for o in objects], "model_ids": [o.model_id for o in objects],
          "occluded": torch.tensor([o.occluded for o in objects]), "truncated": torch.tensor([o.truncated for o in objects])}
    if with_masks:
        gt["masks"] = torch.from_numpy(np.stack([frame.rendered.instance == o.instance_id for o in objects]).astype(np.uint8))
    return objects, image, k, gt


def test_comparison_scores_the_same_boxes_three_ways(tmp_path) -> None:
    torch.manual_seed(0)
    library = ensure_cad_library(progress=False)
    model = build_model_from_checkpoint(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    stage = ViewpointStage(ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32), len(CATEGORIES)), CATEGORIES,
                           4, category_symmetries(library, CATEGORIES))
    comparison = ViewpointComparison(stage, ("gt_boxes",))
    reference = Evaluator(CATEGORIES, setting="gt_boxes")
    renderer = Renderer()
    for seed in range(3):
        _, image, k, gt = _scene_inputs(seed, library, renderer)
        with torch.inference_mode():
            prediction = model.predict_with_boxes([image], [gt["boxes"]], [gt["labels"]], [k])[0]
        comparison.add("gt_boxes", prediction, gt, image, k)
        reference.add(prediction, gt)
    summary = comparison.summary()["settings"]["gt_boxes"]
    objects = {m: comparison.evaluators[("gt_boxes", m)].objects for m in ("network", "stage2", "best_of_k")}
    assert summary["network"]["subsets"] == reference.summary()["subsets"]  # network 1 as evaluate scores it
    assert len(objects["stage2"]) == len(objects["network"]) >= 3
    for top1, best in zip(objects["stage2"], objects["best_of_k"], strict=True):
        assert best.rotation_error_deg <= top1.rotation_error_deg + 1e-6  # the oracle never does worse
    assert any(b.rotation_error_deg < t.rotation_error_deg - 1e-3 for t, b in zip(objects["stage2"], objects["best_of_k"],
                                                                                 strict=True))
    for method, objs in objects.items():  # pooled: over the objects, not the mean of the categories
        errors = np.array([o.rotation_error_deg for o in objs])
        pooled = summary[method]["subsets"]["all"]["pooled"]
        assert pooled["flip_share"] == pytest.approx(float(np.mean(errors > 150.0)))
        assert pooled["med_rot_err_deg"] == pytest.approx(float(np.median(errors)))
    markdown = comparison_markdown(comparison.summary(), "title")
    assert "crop viewpoint stage (top-1)" in markdown and "Flips > 150 deg" in markdown
    assert "| mean | objects |" in markdown
    flips = summary["stage2"]["subsets"]["all"]["pooled"]["flip_share"]
    assert any(line.startswith("| crop viewpoint stage (top-1) | Flips > 150 deg |") and line.endswith(f" {flips:.3f} |")
               for line in markdown.splitlines())


def test_shape_head_top1_counts_the_matched_objects_whose_favoured_class_is_theirs(tmp_path) -> None:
    torch.manual_seed(0)
    library = ensure_cad_library(progress=False)
    classes = library_shapes(library)
    net = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, shapes=classes), len(CATEGORIES), CATEGORIES)
    favoured = {}  # per category, the class the head says (an untrained MobileNetV2 pools to ~0: the bias decides)
    with torch.no_grad():
        for i, name in enumerate(classes):
            category = name.split("/")[0]
            if category not in favoured:
                favoured[category] = name
                net.shape_logits.bias[i] = 5.0
    model = build_model_from_checkpoint(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    stage = ViewpointStage(net, CATEGORIES, 2, category_symmetries(library, CATEGORIES))
    comparison = ViewpointComparison(stage, ("gt_boxes",), shape_classes={m.model_id: m.shape_class
                                                                           for m in library.models})
    expected = {c: [] for c in CATEGORIES}
    renderer = Renderer()
    for seed in range(4):
        objects, image, k, gt = _scene_inputs(seed, library, renderer)
        with torch.inference_mode():
            prediction = model.predict_with_boxes([image], [gt["boxes"]], [gt["labels"]], [k])[0]
        comparison.add("gt_boxes", prediction, gt, image, k)
        for o in objects:
            category = CATEGORIES[o.label - 1]
            expected[category].append(library.get(o.model_id).shape_class == favoured[category])
    head = comparison.summary()["shape_head"]["gt_boxes"]
    assert head["objects"] == sum(len(v) for v in expected.values()) >= 4
    for category, hits in expected.items():
        assert head["per_category"][category] == (pytest.approx(np.mean(hits)) if hits else None), category
    hits = [x for v in expected.values() for x in v]
    assert any(hits) and not all(hits), hits  # these scenes hold objects of favoured classes and of others
    assert "shape head top-1" in comparison_markdown(comparison.summary(), "title")


def test_box_masks_compare_both_mask_heads_with_the_truth_over_the_box(tmp_path) -> None:
    """With a stage that has a mask head and ground-truth masks, each matched object's box-mask IoU
    is recorded for network 1 and the stage; a mask equal to the truth on the grid scores 1, an
    empty one 0."""
    torch.manual_seed(0)
    library = ensure_cad_library(progress=False)
    model = build_model_from_checkpoint(save_tiny_checkpoint(tmp_path / "tiny.pt"))
    net = ViewpointNet(ViewpointModelConfig(crop_size=64, hidden=32, mask_size=16), len(CATEGORIES))
    stage = ViewpointStage(net, CATEGORIES, 2, category_symmetries(library, CATEGORIES))
    comparison = ViewpointComparison(stage, ("gt_boxes",))
    objects, image, k, gt = _scene_inputs(1, library, Renderer(), with_masks=True)
    masks = gt["masks"].numpy()
    with torch.inference_mode():
        prediction = model.predict_with_boxes([image], [gt["boxes"]], [gt["labels"]], [k])[0]
    added = comparison.add("gt_boxes", prediction, gt, image, k)
    assert added["box_masks"].shape == (len(objects), 28, 28)  # the stage's masks go on to the policy
    summary = comparison.summary()["box_masks"]["gt_boxes"]
    assert summary["network"]["objects"] == summary["stage"]["objects"] == len(objects) >= 1
    assert all(0.0 <= v <= 1.0 for m in ("network", "stage") for v in summary[m]["per_category"].values()
               if v is not None)
    assert "Box masks" in comparison_markdown(comparison.summary(), "title")
    # the IoU itself: the truth on the grid scores 1, an empty mask 0
    check = ViewpointComparison(stage, ("gt_boxes",))
    box = gt["boxes"][0]
    truth = box_mask_grid_of(torch.from_numpy(masks[0]), box, 28).numpy()
    check._add_mask_ious("gt_boxes", "car", box, masks[0], np.zeros((28, 28)), (truth >= 0.5).astype(np.float32))
    assert check.mask_ious[("gt_boxes", "stage")]["car"] == [1.0]
    assert check.mask_ious[("gt_boxes", "network")]["car"] == [0.0]
