"""scene3d_ros: camera images to semantic 3D scenes (detections, 6-DOF poses, CAD models).

The library (everything outside ``scene3d_ros.ros``) never imports rclpy.
"""

__version__ = "0.1.0"

CATEGORIES = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car",
    "chair", "diningtable", "motorbike", "sofa", "train", "tvmonitor",
)
"""The 12 Pascal3D+ categories; class id k (1-based in detectors, 0 = background) is CATEGORIES[k-1]."""

MASK_THRESHOLD = 0.35
"""Mask-head probability at which a pixel counts as the object's (where the network's masks are
binarised: evaluation's mask AP, the pipeline's masks and overlays). Chosen with
``scripts/mask_threshold_sweep.py`` on a tuning split (``models/evaluation/mask_threshold_sweep.md``:
the highest mean mask AP50; thin parts get soft probabilities that 0.5 cuts away)."""
