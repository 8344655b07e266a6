"""Shape retrieval: the shape database (render, embed, store), the pose-prior search and the
resolution policy that turns each object's hypotheses into its final pose and CAD model.

Entry points: :class:`ResolutionPolicy` (``resolve``: what the pipeline, ``retrieval_node`` and the
evaluation call), :class:`ObjectQuery`, :class:`Resolution`; :func:`build_shape_database`,
:class:`ShapeDatabase` (``load``, ``save``, ``search``, ``candidates``), :class:`RetrievalResult`,
:class:`ShapeDatabaseError`; console entry ``build_shape_db`` (:mod:`scene3d_ros.cli.build_shape_db`).
"""

from scene3d_ros.retrieval.resolution import ObjectQuery, Resolution, ResolutionPolicy
from scene3d_ros.retrieval.search import FALLBACK_CUBOID, RetrievalResult, ViewCandidates
from scene3d_ros.retrieval.shape_database import (
    ShapeDatabase,
    ShapeDatabaseError,
    ViewGrid,
    build_shape_database,
    default_shape_db_path,
    manifest_path,
)

__all__ = [
    "FALLBACK_CUBOID", "ObjectQuery", "Resolution", "ResolutionPolicy", "RetrievalResult", "ShapeDatabase",
    "ShapeDatabaseError", "ViewCandidates", "ViewGrid", "build_shape_database", "default_shape_db_path",
    "manifest_path",
]
