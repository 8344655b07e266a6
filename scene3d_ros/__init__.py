"""scene3d_ros: camera images to semantic 3D scenes (detections, 6-DOF poses, CAD models).

The library (everything outside ``scene3d_ros.ros``) never imports rclpy.
"""

__version__ = "0.1.0"

CATEGORIES = (
    "aeroplane", "bicycle", "boat", "bottle", "bus", "car",
    "chair", "diningtable", "motorbike", "sofa", "train", "tvmonitor",
)
"""The 12 Pascal3D+ categories; class id k (1-based in detectors, 0 = background) is CATEGORIES[k-1]."""
