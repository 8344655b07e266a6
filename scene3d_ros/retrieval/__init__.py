"""Shape retrieval: the shape database (render, embed, store) and the pose-prior search.

Entry points: :func:`build_shape_database`, :class:`ShapeDatabase` (``load``, ``save``,
``search``), :class:`RetrievalResult`, :class:`SilhouetteCheck`, :class:`ShapeDatabaseError`; console entry
``build_shape_db`` (:mod:`scene3d_ros.cli.build_shape_db`).
"""

from scene3d_ros.retrieval.search import FALLBACK_CUBOID, RetrievalResult, SilhouetteCheck
from scene3d_ros.retrieval.shape_database import (
    ShapeDatabase,
    ShapeDatabaseError,
    ViewGrid,
    build_shape_database,
    default_shape_db_path,
    manifest_path,
)

__all__ = [
    "FALLBACK_CUBOID", "RetrievalResult", "ShapeDatabase", "ShapeDatabaseError", "SilhouetteCheck", "ViewGrid",
    "build_shape_database", "default_shape_db_path", "manifest_path",
]
