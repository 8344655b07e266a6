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
