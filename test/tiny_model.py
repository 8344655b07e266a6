"""The tiny network configuration that keeps training tests fast on two CPU cores."""

TINY_MODEL = {
    "detector": {"min_size": [128], "max_size": 160, "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 60,
                 "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 30, "rpn_batch_size_per_image": 64,
                 "box_batch_size_per_image": 32, "box_detections_per_img": 5, "box_head_fc_layers": [128],
                 "mask_head_layers": [32]},
    "pose": {"trunk_fc_layers": [128]},
    "descriptor": {"hidden": 64, "dim": 64},
    "depth_encoder": {"growth_rate": 8, "block_config": [2, 2], "num_init_features": 16, "view_size_px": 32},
}


def save_tiny_checkpoint(path, score_threshold: float | None = 0.0, detections: int | None = None):
    """A randomly initialised tiny network saved as a checkpoint at ``path`` (returned).

    ``score_threshold`` 0 keeps every detection, so an untrained network still produces output;
    ``detections``: its detections per image (None: ``TINY_MODEL``'s 5).
    """
    import torch

    from scene3d_ros import CATEGORIES
    from scene3d_ros.model import build_model, model_config_from_dict, save_checkpoint

    detector = dict(TINY_MODEL["detector"])
    if score_threshold is not None:
        detector["box_score_thresh"] = score_threshold
    if detections is not None:
        detector["box_detections_per_img"] = int(detections)
    config = model_config_from_dict({**TINY_MODEL, "detector": detector})
    torch.manual_seed(0)
    save_checkpoint(path, build_model(config, load_backbone_weights=False), config, CATEGORIES, rng_state=False)
    return path


def build_tiny_shape_db(output, checkpoint, models, azimuths: int = 4, elevations: int = 2, inplanes: int = 1):
    """A shape database of ``models`` embedded by ``checkpoint``'s network 2 (returns ``output``)."""
    from scene3d_ros.cli.build_shape_db import main as build_shape_db_main
    from scene3d_ros.world.cad_library import ensure_cad_library

    library = ensure_cad_library(progress=False)
    assert build_shape_db_main([
        "--checkpoint", str(checkpoint), "--output", str(output), "--device", "cpu", "--quiet", "--set",
        f"shape_db.grid.azimuths={azimuths}", f"shape_db.grid.elevations={elevations}",
        f"shape_db.grid.inplanes={inplanes}", f"shape_db.models=[{','.join(models)}]",
        f"shape_db.cad_library={library.root}"]) == 0
    return output
