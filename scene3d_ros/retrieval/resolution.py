"""The resolution policy: per object, rotation hypotheses + descriptor + mask -> one final pose and shape.

:class:`ResolutionPolicy` is the one place that turns what the networks say about an object into
what the system publishes: its CAD model (or the cuboid fallback), its final rotation and a
confidence. ``Pipeline``, ``retrieval_node`` and the retrieval evaluation all call it, so what is
evaluated is what ships. Its parameters and their defaults are defined here once; the node's
parameters, ``config/retrieval.yaml`` and ``config/evaluate.yaml`` use the same names and values.

**Input** per object (:class:`ObjectQuery`): the category, network 1's descriptor, the mask
probabilities over the object's box (``G x G``, network 1's ``box_masks``), the translation
(metres, camera optical frame), the camera (optional) and ``k`` rotation hypotheses with
probabilities. Hypotheses are **allocentric** (object -> optical frame relative to the viewing
ray through the object, what a depth view shows), (w, x, y, z). Today ``k = 1``: network 1's
rotation with probability 1; a crop viewpoint stage supplies ``k > 1``.

**Candidates.** For every hypothesis ``h`` (and, with ``azimuth_flips``, its 180-degree azimuth
flip ``h Rz(180)``, the object turned about its up axis, with the same probability), the
``silhouette_candidates`` views of the object's category nearest in descriptor space among those
within ``silhouette_max_angle_deg`` of ``h`` (widened when none is; ``ShapeDatabase.candidates``).
Each candidate (model, view) of each hypothesis is scored, in squared-descriptor-distance units,

    score = d - silhouette_weight * IoU(mask, silhouette) + silhouette_angle_weight * angle / 180
            - hypothesis_weight * ln(p_h)

(``d`` squared L2 descriptor distance, ``IoU`` the soft IoU ``sum(min) / sum(max)`` of the mask
and the view's silhouette, ``angle`` the view's geodesic angle in degrees from ``h``), plus
``- shape_weight * ln p(shape of the view's model)`` for an object whose query carries shape
probabilities (the crop viewpoint stage's shape head: one probability per shape class
``"<category>/<subtype>"``; a model of a class the query does not list counts as the uniform share
``1 / number listed``; the model's class comes from ``shapes.shape_key``, :class:`ModelPoints`), and the
lowest score over all hypotheses and candidates wins: the object's outline chooses among views
and models that the descriptor finds about equally close. **Without the silhouette check**
(``silhouette_check`` off, an object without a mask, a database without silhouettes) each
hypothesis keeps its single nearest view within ``max_angle_deg`` and the score is
``d - hypothesis_weight * ln(p_h)``: the paper's pose-prior retrieval.

**The camera term** (``camera_weight`` > 0). A view's silhouette is normalised to its own box, so
it cannot tell how the object's outline sits in the real image. For an object with several
rotations to choose from (k > 1 hypotheses, or ``azimuth_flips``), a camera (``intrinsics``) and
a box, each hypothesis's ``camera_models`` models with the best-scoring candidate views are also
rendered in the hypothesis's rotation in the real camera, at the object's translation (fitted to
the box for that model and rotation with ``fit_translation``), over the object's box
(:func:`camera_silhouette`, the project's renderer), and each (hypothesis, model) candidate scores

    score of the model's best view - camera_weight * IoU(mask, rendered silhouette)

(the lowest wins; the final rotation and translation follow as below).

**Occlusion** (``occlusion_aware``, default on). Masks are of the visible pixels, and visible
masks do not overlap: where another object's mask (resampled from its box) claims a cell of this
object's box, this object is hidden there or absent, so both IoUs above leave such cells out
(weight ``1 - clip(o - m, 0, 1)``, :func:`occlusion_weights`). On the tuning split with stage
version 6: flips 6.4 -> 6.2 %, Acc_pi/6 0.825 -> 0.828, the rest unchanged
(``models/evaluation/policy_occlusion_aware.md``). An object with one
rotation (network 1's alone) keeps the views' score: it publishes the chosen view's rotation,
which a rendering of its hypothesis would not have scored. Without a camera, a box or meshes the
views' score decides too.

**Output** (:class:`Resolution`): the chosen view's model (the cuboid fallback when the category
has no model or ``d > max_distance``) and the **final rotation**, egocentric (object -> camera
optical frame, w >= 0): with the silhouette check, the chosen view's rotation (turned about +z
towards the hypothesis for continuously symmetric models) mapped through the object's
translation (:func:`~scene3d_ros.model.rotations.allocentric_to_egocentric`); without it, or for
the cuboid fallback, the chosen hypothesis's (``final_rotation: hypothesis`` takes the winning
hypothesis's with the check too). This module is the only place that maps a database
view back to an egocentric rotation.

The weights are in squared-descriptor-distance units, so they belong to a trained network:
``scripts/silhouette_check_sweep.py`` tuned ``silhouette_weight`` 20, ``silhouette_angle_weight``
5 and the 90-degree window for the shipped model on a split the report does not use
(``models/evaluation/silhouette_check_sweep.md``). No ``azimuth_flips`` was kept from a sweep
with the crop viewpoint stage's hypotheses on that split (``models/MODEL_CARD.md``);
``camera_weight`` 20 and ``camera_models`` 4 were chosen there too
(``models/evaluation/camera_silhouettes.md``); ``hypothesis_weight`` 3 (was 1) once the stage's
probabilities got sharper with mirror averaging and the front/back loss
(``models/evaluation/policy_hypothesis_weight.md``); ``hypothesis_weight`` 12 and ``shape_weight``
5 with stage version 4 and its shape head (``models/evaluation/policy_shape_weight.md``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from scene3d_ros.geometry import CameraIntrinsics, quaternion_to_matrix
from scene3d_ros.model.rotations import (
    allocentric_to_egocentric,
    canonicalize_quaternion,
    egocentric_to_allocentric,
    quaternion_multiply,
)
from scene3d_ros.retrieval.search import FALLBACK_CUBOID, ViewCandidates, query_rotations
from scene3d_ros.retrieval.shape_database import ShapeDatabase
from scene3d_ros.retrieval.translation import ModelPoints, fit_translation

if TYPE_CHECKING:
    import trimesh

    from scene3d_ros.world.renderer import Renderer

AZIMUTH_FLIP = (0.0, 0.0, 0.0, 1.0)
"""The quaternion (w, x, y, z) of a 180-degree turn about the object's up axis (+z): ``q * AZIMUTH_FLIP``
is the hypothesis seen from the opposite azimuth (same elevation and in-plane angle)."""
OPTICAL_AXIS = (0.0, 0.0, 1.0)
"""A translation on the optical axis (metres), where allocentric and egocentric rotations coincide:
the stand-in for an object whose translation is not known."""


FINAL_ROTATIONS = ("auto", "view", "hypothesis")
"""What the silhouette check publishes as the final rotation (:class:`ResolutionPolicy`)."""
SHAPE_PROBABILITY_FLOOR = 1e-6
"""The least shape-class probability the shape term uses (ln 1e-6 = -13.8 nats): a class the head
rules out is unlikely, not impossible."""
RENDER_SUPERSAMPLE = 2
"""The camera term: sample rays per silhouette cell along each side (2: 2 x 2 rays per cell, as
``roi_align(sampling_ratio=2)`` samples Mask R-CNN's box masks and the database's silhouettes)."""


@dataclass(frozen=True)
class ResolutionPolicy:
    """The resolution policy's parameters (module doc) and :meth:`resolve`.

    ``max_angle_deg``: pose window without the silhouette check (degrees, geodesic, allocentric);
    ``silhouette_check``: score candidates by their silhouette against the object's mask;
    ``silhouette_max_angle_deg``: pose window of the check (degrees); ``silhouette_weight``: per
    unit of mask/silhouette IoU, ``silhouette_angle_weight``: per 180 degrees between a view and
    its hypothesis, ``hypothesis_weight``: per nat of hypothesis log-probability (all squared
    descriptor distance units, >= 0); ``silhouette_candidates``: nearest views scored per
    hypothesis; ``azimuth_flips``: also score each hypothesis's 180-degree azimuth flip;
    ``max_distance``: cuboid fallback beyond this squared descriptor distance (None = never);
    ``final_rotation``: with the silhouette check, the published rotation is the chosen ``view``'s
    (the database's view grid) or the winning ``hypothesis`` (the one, possibly flipped, whose
    candidate won: finer than the grid when the hypotheses come from the crop viewpoint stage), or
    ``auto``: the view for an object with one hypothesis (network 1's rotation), the winning
    hypothesis for one with several (the crop viewpoint stage's). Measured on held-out objects with
    ground-truth boxes: one hypothesis, view 33.8 deg MedErr vs 41.5 for the hypothesis; the
    stage's five, hypothesis 31.5 vs view 35.4 (``models/viewpoint/``);
    ``fit_translation``: move the object along (and across) its viewing ray until the retrieved
    model, in the final rotation, projects onto the object's box
    (:func:`~scene3d_ros.retrieval.translation.fit_translation`; needs the query's ``box`` and
    ``intrinsics`` and the ``shapes`` given to :meth:`resolve`; a box cut by the image border
    keeps the query's translation);
    ``camera_weight``: per unit of IoU between the mask and a candidate model's silhouette rendered
    in the hypothesis's rotation in the real camera, for objects with several rotations (squared
    descriptor distance units, >= 0; 0 = no rendering; module doc), ``camera_models``: the models
    rendered per hypothesis (those with the best candidate views); ``shape_weight``: per nat of
    the log-probability of a candidate model's shape class, for queries with shape probabilities
    (squared descriptor distance units, >= 0; 0 = the descriptor alone chooses the model);
    ``occlusion_aware``: in both silhouette IoUs, cells of an object's box that another object's
    mask claims do not count (:func:`occlusion_weights`: an occluded object is not penalised for
    what its occluder hides; needs the objects' boxes, so it applies where they are known).
    """

    max_angle_deg: float = 30.0
    silhouette_check: bool = True
    silhouette_max_angle_deg: float = 90.0
    silhouette_weight: float = 20.0
    silhouette_angle_weight: float = 5.0
    silhouette_candidates: int = 64
    hypothesis_weight: float = 12.0
    azimuth_flips: bool = False
    max_distance: float | None = None
    final_rotation: str = "auto"
    fit_translation: bool = True
    camera_weight: float = 20.0
    camera_models: int = 4
    shape_weight: float = 5.0
    occlusion_aware: bool = True

    def __post_init__(self) -> None:
        for name in ("max_angle_deg", "silhouette_max_angle_deg"):
            value = float(getattr(self, name))
            if not 0.0 < value <= 180.0:
                raise ValueError(f"{name} must be in (0, 180] degrees, got {getattr(self, name)}")
        for name in ("silhouette_weight", "silhouette_angle_weight", "hypothesis_weight", "camera_weight",
                     "shape_weight"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        for name in ("silhouette_candidates", "camera_models"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        for name in ("silhouette_check", "azimuth_flips", "fit_translation", "occlusion_aware"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.final_rotation not in FINAL_ROTATIONS:
            raise ValueError(f"final_rotation must be one of {FINAL_ROTATIONS}, got {self.final_rotation!r}")
        if self.max_distance is not None and not float(self.max_distance) >= 0.0:
            raise ValueError(f"max_distance must be >= 0 or None (never), got {self.max_distance}")

    def replace(self, **changes) -> ResolutionPolicy:
        """A copy with ``changes`` (validated), e.g. a parameter changed at run time."""
        return dataclasses.replace(self, **changes)

    def checks_silhouettes(self, database: ShapeDatabase, queries: Sequence[ObjectQuery]) -> bool:
        """Whether :meth:`resolve` runs the silhouette check on ``queries``: switched on, the
        database holds silhouettes and every object has a mask."""
        return (self.silhouette_check and database.silhouettes is not None
                and all(q.mask is not None for q in queries))

    def resolve(self, database: ShapeDatabase, queries: Sequence[ObjectQuery],
                device: str | torch.device | None = None, backend: str = "torch",
                shapes: ModelPoints | Callable[[str], np.ndarray] | None = None) -> list[Resolution]:
        """The :class:`Resolution` of each object (module doc), in order.

        ``device``/``backend``: where and how the database search runs
        (:meth:`ShapeDatabase.candidates`). ``shapes(model_id)``: points (N, 3) of a model in its
        object frame at true size, metres (e.g. :meth:`CadLibrary.mesh` vertices), for
        ``fit_translation`` (None: translations stay the queries'), and ``shapes.mesh(model_id)``
        its mesh, for ``camera_weight`` (:class:`ModelPoints` gives both; without meshes the
        silhouettes are the database's views' alone). Raises ValueError for a mask
        that does not match the database's silhouette grid.
        """
        if not queries:
            return []
        checked = self.checks_silhouettes(database, queries)
        rows = _hypothesis_rows(queries, self.azimuth_flips)
        width = int(self.silhouette_candidates) if checked else 1
        window = self.silhouette_max_angle_deg if checked else self.max_angle_deg
        rotations = torch.from_numpy(np.stack([r.rotation for r in rows]))
        candidates = database.candidates(np.stack([queries[r.query].descriptor for r in rows]).astype(np.float32),
                                         rotations, [queries[r.query].category for r in rows], window, width,
                                         backend=backend, device=device)
        width = candidates.index.shape[1]  # fewer than asked when the database holds fewer views
        distance = candidates.distance
        score = distance
        ious = weights = None
        if checked:
            masks = torch.from_numpy(np.stack([_mask(queries[r.query].mask, database.silhouette_grid)
                                               for r in rows]))
            if self.occlusion_aware:
                per_query = occlusion_weights(queries, database.silhouette_grid)
                weights = torch.from_numpy(np.stack([per_query[r.query] for r in rows]))
            ious = soft_iou(masks, database.view_silhouettes(candidates.index), weights)
            score = (distance - float(self.silhouette_weight) * ious
                     + float(self.silhouette_angle_weight) * candidates.angle_deg / 180.0)
        log_p = torch.tensor([r.log_probability for r in rows], dtype=score.dtype)
        score = score - float(self.hypothesis_weight) * log_p[:, None]
        if self.shape_weight > 0.0:
            score = score - float(self.shape_weight) * _shape_log_probabilities(database, queries, rows,
                                                                                candidates.index, shapes)
        score = torch.where(torch.isfinite(distance), score, torch.tensor(float("inf")))

        # per object: the best (row, column) over its hypothesis rows, first minimum in row order
        chosen: list[tuple[int, int]] = []
        camera_ious: dict[int, float] = {}  # objects scored in the camera: the chosen candidate's IoU
        start = 0
        for i in range(len(queries)):
            end = start
            while end < len(rows) and rows[end].query == i:
                end += 1
            pick = None
            if checked and self._scores_in_camera(queries[i], end - start, shapes):
                pick = self._camera_choice(database, queries[i], rows[start:end], candidates, score, start,
                                           masks[start].numpy(), shapes,
                                           None if weights is None else weights[start].numpy())
            if pick is not None:
                chosen.append(pick[:2])
                camera_ious[i] = pick[2]
            else:
                flat = int(score[start:end].reshape(-1).argmin())
                chosen.append((start + flat // width, flat % width))
            start = end
        row_idx = torch.tensor([r for r, _ in chosen], dtype=torch.long)
        col_idx = torch.tensor([c for _, c in chosen], dtype=torch.long)
        views = candidates.index[row_idx, col_idx]
        _, hypothesis_r = query_rotations(rotations[row_idx])
        view_q = database.view_rotations(views.numpy(), hypothesis_r)
        translations = torch.tensor(np.stack([q.translation for q in queries]), dtype=torch.float64)
        hypothesis_allo = rotations[row_idx].double().numpy()

        out = []
        for i, (row, col) in enumerate(chosen):
            hypothesis = rows[row]
            view = int(views[i])
            distance_i = float(distance[row, col])
            model = int(database.model_index[view]) if view >= 0 else -1
            too_far = self.max_distance is not None and distance_i > float(self.max_distance)
            fallback = FALLBACK_CUBOID if view < 0 or too_far else None
            iou = float(ious[row, col]) if ious is not None and view >= 0 else None
            if i in camera_ious:
                iou = camera_ious[i]
            window_i = float(candidates.window_deg[row])
            use_view = self.final_rotation == "view" or (self.final_rotation == "auto"
                                                          and len(queries[i].hypotheses) == 1)
            final_allo = view_q[i] if checked and fallback is None and use_view else hypothesis_allo[i]
            translation = translations[i].numpy()
            final = _egocentric(final_allo, translation)
            model_id = database.model_ids[model] if fallback is None else None
            query = queries[i]
            if self.fit_translation and shapes is not None and model_id is not None and query.box is not None \
                    and query.intrinsics is not None:
                fitted = fit_translation(shapes(model_id), quaternion_to_matrix(final), translation, query.box,
                                         query.intrinsics)
                if fitted is not None:  # the final rotation is relative to the new viewing ray
                    translation, final = fitted, _egocentric(final_allo, fitted)
            confidence = None
            if iou is not None:
                confidence = 0.0 if fallback is not None else iou * math.exp(hypothesis.log_probability)
            out.append(Resolution(
                quaternion=tuple(float(v) for v in final),
                model_id=model_id,
                fallback=fallback, confidence=confidence, silhouette_iou=iou,
                distance=distance_i if view >= 0 else math.inf, view_index=view,
                view_quaternion=tuple(float(v) for v in view_q[i]) if view >= 0 else None,
                view_angle_deg=float(candidates.angle_deg[row, col]) if view >= 0 else math.nan,
                widened_to_deg=window_i if view >= 0 and window_i > window + 1e-9 else None,
                hypothesis=hypothesis.hypothesis, flipped=hypothesis.flipped, checked=checked,
                translation=tuple(float(v) for v in translation), camera_scored=i in camera_ious))
        return out

    def _scores_in_camera(self, query: ObjectQuery, num_rows: int, shapes: ModelPoints | None) -> bool:
        """Whether ``query``'s candidates get the camera term: ``camera_weight`` > 0, several
        rotations to choose from (``num_rows``), a camera, a box of at least one pixel and ``shapes``
        that give meshes."""
        if not self.camera_weight > 0.0 or num_rows < 2 or query.intrinsics is None or query.box is None:
            return False
        x0, y0, x1, y1 = np.asarray(query.box, dtype=np.float64).reshape(4)
        return x1 - x0 >= 1.0 and y1 - y0 >= 1.0 and callable(getattr(shapes, "mesh", None))

    def _camera_choice(self, database: ShapeDatabase, query: ObjectQuery, rows: Sequence[_HypothesisRow],
                       candidates: ViewCandidates, score: Tensor, first_row: int, mask: np.ndarray,
                       shapes: ModelPoints, weights: np.ndarray | None = None) -> tuple[int, int, float] | None:
        """The camera term for one object (module doc): per hypothesis row, its ``camera_models``
        models with the best candidate views (lowest ``score``, the views' score), each rendered in
        the row's rotation at the query's translation (fitted to the box with ``fit_translation``);
        the lowest ``score of the model's best view - camera_weight x IoU`` wins (``weights``: the
        cells' weights in the IoU, :func:`occlusion_weights`). Returns (row,
        column of that view, IoU), or None when no row has a candidate view."""
        best: tuple[float, int, int, float] | None = None
        for offset, row in enumerate(rows):
            r = first_row + offset
            index = candidates.index[r].numpy()
            row_score = score[r].double().numpy()
            valid = (index >= 0) & np.isfinite(row_score)
            models_seen: set[int] = set()
            at_query = quaternion_to_matrix(_egocentric(row.rotation, query.translation))
            for col in np.flatnonzero(valid)[np.argsort(row_score[valid], kind="stable")]:
                model = int(database.model_index[index[col]])
                if model in models_seen:
                    continue
                models_seen.add(model)
                model_id = database.model_ids[model]
                translation, rotation = query.translation, at_query
                if self.fit_translation:
                    fitted = fit_translation(shapes(model_id), rotation, translation, query.box, query.intrinsics)
                    if fitted is not None:
                        translation = fitted
                        rotation = quaternion_to_matrix(_egocentric(row.rotation, fitted))
                silhouette = camera_silhouette(shapes.mesh(model_id), rotation, translation, query.box,
                                               query.intrinsics, mask.shape[0])
                iou = float(soft_iou(torch.from_numpy(np.asarray(mask, np.float32))[None],
                                     torch.from_numpy(silhouette)[None, None],
                                     None if weights is None else torch.from_numpy(weights)[None]))
                total = float(row_score[col]) - float(self.camera_weight) * iou
                if best is None or total < best[0]:
                    best = (total, r, int(col), iou)
                if len(models_seen) == int(self.camera_models):
                    break
        return None if best is None else best[1:]


@dataclass(frozen=True)
class ObjectQuery:
    """One object to resolve (module doc).

    ``category``: the detected category (only its models are searched); ``descriptor`` (D,)
    network 1's descriptor; ``shape_probabilities``: ``{"<category>/<subtype>": p}`` from the crop
    viewpoint stage's shape head, or None; ``hypotheses`` (k, 4) allocentric (w, x, y, z) rotations;
    ``probabilities`` (k,) in [0, 1] (one hypothesis: 1; a hypothesis of probability 0, e.g. a
    softmax underflow, is not considered); ``translation`` (3,) metres in the
    optical frame (``OPTICAL_AXIS`` when unknown); ``mask`` (G, G) mask probabilities over the
    object's box in [0, 1], or None; ``intrinsics`` (the image's camera) and ``box`` (x0 y0 x1 y1,
    pixel edges, the box the mask covers), or None: for the translation fit and the camera term,
    which are skipped without them.
    """

    category: str | None
    descriptor: np.ndarray
    hypotheses: np.ndarray
    probabilities: np.ndarray | None = None
    translation: np.ndarray | tuple[float, float, float] = OPTICAL_AXIS
    mask: np.ndarray | None = None
    intrinsics: CameraIntrinsics | None = None
    box: np.ndarray | None = None
    shape_probabilities: Mapping[str, float] | None = None

    @classmethod
    def from_egocentric(cls, category: str | None, descriptor: np.ndarray, quaternion: np.ndarray,
                        translation: np.ndarray, mask: np.ndarray | None = None,
                        intrinsics: CameraIntrinsics | None = None,
                        probabilities: np.ndarray | None = None, box: np.ndarray | None = None,
                        shape_probabilities: Mapping[str, float] | None = None) -> ObjectQuery:
        """The query of an object at ``translation`` (3,) metres in the optical frame with egocentric
        rotation hypotheses ``quaternion``: (4,) or (k, 4) (w, x, y, z), object -> optical frame
        (a ``detections_3d`` pose, or the crop viewpoint stage's hypotheses, most probable first),
        with ``probabilities`` (k,) in [0, 1] (None: 1 each). Each becomes allocentric, relative to
        the ray to ``translation`` (:func:`~scene3d_ros.model.rotations.egocentric_to_allocentric`)."""
        q = torch.as_tensor(np.asarray(quaternion, dtype=np.float64).reshape(-1, 4))
        translation = np.asarray(translation, dtype=np.float64)
        if translation.shape != (3,):
            raise ValueError(f"translation must be 3 metres (x, y, z), got shape {translation.shape}")
        t = torch.as_tensor(translation).expand(len(q), 3)
        return cls(category, descriptor, egocentric_to_allocentric(q, t).numpy(), probabilities,
                   translation=translation, mask=mask, intrinsics=intrinsics, box=box,
                   shape_probabilities=shape_probabilities)

    def __post_init__(self) -> None:
        hypotheses = np.asarray(self.hypotheses, dtype=np.float64).reshape(-1, 4)
        if not len(hypotheses) or not np.isfinite(hypotheses).all() or \
                not np.allclose(np.linalg.norm(hypotheses, axis=1), 1.0, atol=1e-3):
            raise ValueError(f"hypotheses must be k >= 1 unit quaternions (w, x, y, z), got {self.hypotheses!r}")
        p = np.ones(len(hypotheses)) if self.probabilities is None else \
            np.asarray(self.probabilities, dtype=np.float64).reshape(-1)
        if p.shape != (len(hypotheses),) or not ((p >= 0.0) & (p <= 1.0 + 1e-6)).all() or not (p > 0.0).any():
            raise ValueError(f"need one probability in [0, 1] per hypothesis ({len(hypotheses)}), at least one > 0, "
                             f"got {p.tolist()}")
        translation = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if translation.shape != (3,) or not np.isfinite(translation).all():
            raise ValueError(f"translation must be 3 finite metres, got {self.translation!r}")
        object.__setattr__(self, "hypotheses", hypotheses)
        object.__setattr__(self, "probabilities", p)
        object.__setattr__(self, "translation", translation)
        object.__setattr__(self, "descriptor", np.asarray(self.descriptor, dtype=np.float32).reshape(-1))
        if self.shape_probabilities is not None:
            shapes = {str(k): float(v) for k, v in dict(self.shape_probabilities).items()}
            if not all(math.isfinite(v) and 0.0 <= v <= 1.0 + 1e-6 for v in shapes.values()):
                raise ValueError(f"shape probabilities must be in [0, 1], got {shapes}")
            object.__setattr__(self, "shape_probabilities", shapes)


@dataclass(frozen=True)
class Resolution:
    """The resolved object (module doc).

    ``quaternion``: the final rotation, egocentric (object -> camera optical frame), (w, x, y, z),
    w >= 0; ``model_id``: the retrieved CAD model, None for the cuboid fallback (``fallback ==
    "cuboid"``: no view of the category, or ``distance > max_distance``); ``confidence`` in [0, 1]:
    with the silhouette check, the soft IoU of the mask with the chosen view's silhouette (with the
    camera term: with the chosen model rendered in the camera) times the chosen hypothesis's
    probability (0 for the fallback), else None; ``silhouette_iou``: that IoU (None without the
    check); ``camera_scored``: whether the camera term scored the object; ``distance``: squared L2 descriptor distance to the chosen view (inf
    when none); ``view_index``: its database row (-1 = none); ``view_quaternion``: its allocentric
    rotation (None when none); ``view_angle_deg``: its geodesic angle from the hypothesis (degrees);
    ``widened_to_deg``: the pose window used when the asked one held no view (else None);
    ``hypothesis``: index of the chosen hypothesis; ``flipped``: whether its azimuth flip won;
    ``checked``: whether the silhouette check ran; ``translation``: the final position (metres,
    optical frame): fitted to the retrieved model's projection (``fit_translation``) or the query's.
    """

    quaternion: tuple[float, float, float, float]
    model_id: str | None
    fallback: str | None
    confidence: float | None
    silhouette_iou: float | None
    distance: float
    view_index: int
    view_quaternion: tuple[float, float, float, float] | None
    view_angle_deg: float
    widened_to_deg: float | None
    hypothesis: int
    flipped: bool
    checked: bool
    translation: tuple[float, float, float] = (0.0, 0.0, 1.0)
    camera_scored: bool = False


@dataclass(frozen=True)
class _HypothesisRow:
    """One searched rotation: object ``query``, its ``hypothesis`` index, whether it is the flip."""

    query: int
    hypothesis: int
    flipped: bool
    rotation: np.ndarray
    log_probability: float


def _egocentric(allocentric: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Egocentric canonical quaternion (4,) of an allocentric one relative to the ray to ``translation``."""
    return allocentric_to_egocentric(torch.as_tensor(np.asarray(allocentric, dtype=np.float64)).reshape(1, 4),
                                     torch.as_tensor(np.asarray(translation, dtype=np.float64)).reshape(1, 3))[0].numpy()


def _hypothesis_rows(queries: Sequence[ObjectQuery], flips: bool) -> list[_HypothesisRow]:
    """Every hypothesis of every object (and its azimuth flip), grouped by object in order."""
    flip = torch.tensor(AZIMUTH_FLIP, dtype=torch.float64)
    rows = []
    for i, q in enumerate(queries):
        for h, (rotation, p) in enumerate(zip(q.hypotheses, q.probabilities, strict=True)):
            if p <= 0.0:
                continue
            log_p = math.log(min(float(p), 1.0))
            rows.append(_HypothesisRow(i, h, False, rotation, log_p))
            if flips:
                flipped = canonicalize_quaternion(quaternion_multiply(torch.from_numpy(rotation), flip)).numpy()
                rows.append(_HypothesisRow(i, h, True, flipped, log_p))
    return rows


def _shape_log_probabilities(database: ShapeDatabase, queries: Sequence[ObjectQuery], rows: Sequence[_HypothesisRow],
                             views: Tensor, shapes: ModelPoints | Callable[[str], np.ndarray] | None) -> Tensor:
    """``(rows, candidates)``: ln p of each candidate view's model's shape class under its query's
    shape probabilities (0 for a query without them, a missing view, or ``shapes`` that cannot name
    a model's class; a class the query does not list: the uniform share of those it lists)."""
    out = torch.zeros(views.shape, dtype=torch.float32)
    shape_key = getattr(shapes, "shape_key", None)
    if shape_key is None:
        return out
    models = database.model_index[views.clamp_min(0).numpy()]
    for r, row in enumerate(rows):
        probabilities = queries[row.query].shape_probabilities
        if not probabilities:
            continue
        uniform = 1.0 / len(probabilities)
        per_model: dict[int, float] = {}
        for c, model in enumerate(models[r].tolist()):
            if int(views[r, c]) < 0:
                continue
            if model not in per_model:
                p = probabilities.get(shape_key(database.model_ids[model]), uniform)
                per_model[model] = math.log(max(float(p), SHAPE_PROBABILITY_FLOOR))
            out[r, c] = per_model[model]
    return out


def _mask(mask: np.ndarray, grid: int | None) -> np.ndarray:
    """A validated (grid, grid) float32 mask in [0, 1]."""
    m = np.asarray(mask, dtype=np.float32)
    if grid is None or m.shape != (grid, grid):
        raise ValueError(f"masks must be {grid}x{grid} (the shape database's silhouettes), got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("masks must be finite")
    return np.clip(m, 0.0, 1.0)


def soft_iou(masks: Tensor, silhouettes: Tensor, weights: Tensor | None = None) -> Tensor:
    """Soft IoU ``sum(w min) / sum(w max)`` of masks ``(N, G, G)`` with candidate silhouettes
    ``(N, K, G, G)``, values in [0, 1]: ``(N, K)``; 0 where both are empty. ``weights`` ``(N, G, G)``
    in [0, 1] per cell (None: 1 everywhere; :func:`occlusion_weights`)."""
    a = masks[:, None].float()
    b = silhouettes.float()
    w = 1.0 if weights is None else weights[:, None].float()
    union = (w * torch.maximum(a, b)).sum(dim=(2, 3))
    return (w * torch.minimum(a, b)).sum(dim=(2, 3)) / union.clamp_min(1e-6)


def box_overlaps(boxes: Tensor) -> Tensor:
    """``(K, K)`` bool: whether boxes ``(K, 4)`` (x0 y0 x1 y1, pixel edges) overlap with a positive
    area (touching edges do not; each box overlaps itself)."""
    lo, hi = boxes[:, :2], boxes[:, 2:]
    return ((torch.minimum(hi[:, None], hi[None]) - torch.maximum(lo[:, None], lo[None])) > 0).all(dim=2)


def occlusion_weights(queries: Sequence[ObjectQuery], grid: int) -> list[np.ndarray]:
    """Per query, the weight ``(grid, grid)`` float32 of each cell of its box's mask grid in the
    silhouette IoU: ``1 - clip(o - m, 0, 1)``, with ``m`` the query's own mask probability and ``o``
    the highest probability that another query's mask (resampled bilinearly from that query's box;
    0 outside it) has at the cell's centre. Visible masks do not overlap, so where another object's
    mask claims a cell this object is hidden there or absent: its silhouette there is neither right
    nor wrong (an occluded object is not penalised for the part its occluder hides). Only objects
    whose boxes overlap the query's are resampled (work grows with the overlaps, not with the
    square of the objects). Queries without a box or a mask get, and count as, nothing (weights 1)."""
    grid = int(grid)
    known = [i for i, q in enumerate(queries) if q.box is not None and q.mask is not None]
    out = [np.ones((grid, grid), dtype=np.float32) for _ in queries]
    if len(known) < 2:
        return out
    boxes = torch.tensor(np.stack([np.asarray(queries[i].box, dtype=np.float64).reshape(4) for i in known]))
    masks = torch.from_numpy(np.stack([_mask(queries[i].mask, grid) for i in known]))
    centres = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    sizes = (boxes[:, 2:] - boxes[:, :2]).clamp_min(1e-6)
    xs = boxes[:, 0, None] + centres[None] * sizes[:, 0, None]  # (K, G) cell centres, pixels
    ys = boxes[:, 1, None] + centres[None] * sizes[:, 1, None]
    overlaps = box_overlaps(boxes)
    for a, i in enumerate(known):
        others = [b for b in range(len(known)) if b != a and bool(overlaps[a, b])]  # only boxes that overlap it
        if not others:
            continue
        u = 2.0 * (xs[a][None, None, :] - boxes[others, 0, None, None]) / sizes[others, 0, None, None] - 1.0
        v = 2.0 * (ys[a][None, :, None] - boxes[others, 1, None, None]) / sizes[others, 1, None, None] - 1.0
        sample_at = torch.stack(torch.broadcast_tensors(u, v), dim=-1).float()  # (J, G, G, 2): x, y in [-1, 1]
        sampled = torch.nn.functional.grid_sample(masks[others][:, None], sample_at, mode="bilinear",
                                                  padding_mode="zeros", align_corners=False)[:, 0]
        hidden = (sampled.max(dim=0).values - masks[a]).clamp(0.0, 1.0)
        out[i] = (1.0 - hidden).numpy()
    return out


def camera_silhouette(mesh: trimesh.Trimesh, rotation: np.ndarray, translation: np.ndarray, box: np.ndarray,
                      intrinsics: CameraIntrinsics, grid: int, renderer: Renderer | None = None) -> np.ndarray:
    """Silhouette ``(grid, grid)`` float32 in [0, 1] of ``mesh`` (object frame, metres) in pose
    ``rotation`` (3, 3) and ``translation`` (3,) (object -> optical frame, metres) seen by the
    camera ``intrinsics``, over the image region ``box`` (x0 y0 x1 y1, pixel edges) as a Mask
    R-CNN box mask covers its box: each cell is the share of its ``RENDER_SUPERSAMPLE`` x
    ``RENDER_SUPERSAMPLE`` rays that hit the mesh. The rays are the real camera's, so perspective,
    the object's distance and its place in the box all show. Rendered by ``renderer``'s
    :meth:`~scene3d_ros.world.renderer.Renderer.render_depth` (default the process-wide one) with
    the intrinsics of the box's region resampled to ``grid x RENDER_SUPERSAMPLE`` pixels a side."""
    from scene3d_ros.world.renderer import default_renderer  # open3d: loaded only when camera scoring runs

    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64).reshape(4)
    if not (x1 - x0 > 0.0 and y1 - y0 > 0.0):
        raise ValueError(f"box must have x1 > x0 and y1 > y0 pixels, got {tuple(np.asarray(box).reshape(4))}")
    side = int(grid) * RENDER_SUPERSAMPLE
    sx, sy = side / (x1 - x0), side / (y1 - y0)
    region = CameraIntrinsics(intrinsics.fx * sx, intrinsics.fy * sy, (intrinsics.cx - x0) * sx,
                              (intrinsics.cy - y0) * sy, side, side)
    depth = (renderer or default_renderer()).render_depth(mesh, rotation, translation, region)
    hits = (depth > 0.0).astype(np.float32).reshape(int(grid), RENDER_SUPERSAMPLE, int(grid), RENDER_SUPERSAMPLE)
    return hits.mean(axis=(1, 3))
