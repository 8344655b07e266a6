"""The ROS-free perception pipeline: an RGB image and its intrinsics -> posed, classified objects.

The nodes, the demo and the benchmarks call this. Poses are in the camera optical frame (x right,
y down, z forward), metres; quaternions (w, x, y, z) with w >= 0. Given a shape database, each
object also gets its retrieved CAD model (or the cuboid fallback) and its final rotation from the
resolution policy (:class:`scene3d_ros.retrieval.ResolutionPolicy`, the one the retrieval node
and the evaluation call), with the silhouette check when the database holds silhouettes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scene3d_ros import MASK_THRESHOLD
from scene3d_ros.geometry import CameraIntrinsics, canonical_quaternion, matrix_to_quaternion
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.model.device import resolve_device
from scene3d_ros.model.fast_path import apply_fast_path
from scene3d_ros.model.viewpoint import HYPOTHESIS_SEPARATION_DEG, ViewpointStage, category_symmetries
from scene3d_ros.model.viewpoint_checkpoint import build_viewpoint_model
from scene3d_ros.paths import default_model_path, default_viewpoint_model_path
from scene3d_ros.retrieval import ObjectQuery, ResolutionPolicy, ShapeDatabase
from scene3d_ros.retrieval.translation import ModelPoints
from scene3d_ros.world.cad_library import CadLibrary


@dataclass
class DetectedObject:
    """One object in one image.

    ``box`` x0 y0 x1 y1 in pixels (edges); ``mask`` HxW bool; ``quaternion`` object -> optical
    frame; ``translation`` of the object's bounding-box centre, metres; ``size`` the 3D box size
    along the object's own x (front), y (left), z (up) axes, metres; ``descriptor`` the 500-D
    object descriptor; ``allocentric_quaternion`` the rotation relative to the viewing ray (what
    the retrieval search compares with its depth views). With retrieval: ``model_id`` the
    retrieved CAD model (``None`` for the cuboid fallback: ``fallback == "cuboid"``; ``size`` is
    then the category's median size, else the model's extents), ``retrieval_distance`` the
    squared descriptor distance to the chosen view, ``model_quaternion`` the final rotation (object
    -> optical frame) of the resolution policy: with the silhouette check the chosen view's, the
    pose in which the model fits the image (often closer to the truth than ``quaternion``), else
    the network's; ``model_translation`` the policy's final position (metres, optical frame; fitted
    to the retrieved model's projection onto ``box``, else ``translation``); ``confidence`` the
    policy's (None without the silhouette check). ``box_mask`` (28, 28): mask probabilities over
    ``box``, what the resolution policy compares with silhouettes: the crop viewpoint stage's when it
    has a mask head (from the crop at full resolution), else network 1's mask head's (which also
    gives ``mask``). With the crop viewpoint
    stage: ``quaternion`` is its best hypothesis, ``network_quaternion`` network 1's own rotation
    (the paper's method), ``hypotheses`` (k, 4) the stage's egocentric rotation hypotheses, most
    probable first, with their ``hypothesis_scores`` (k,) probabilities, and, when the stage has
    a shape head, ``shape_probabilities`` (shape class ``"<category>/<subtype>"`` -> probability);
    without it ``network_quaternion`` equals ``quaternion`` and the hypotheses are None.
    """

    category: str
    label: int
    score: float
    box: np.ndarray
    mask: np.ndarray | None
    quaternion: np.ndarray
    translation: np.ndarray
    size: np.ndarray
    descriptor: np.ndarray | None = None
    allocentric_quaternion: np.ndarray | None = None
    model_id: str | None = None
    fallback: str | None = None
    retrieval_distance: float | None = None
    box_mask: np.ndarray | None = None
    model_quaternion: np.ndarray | None = None
    model_translation: np.ndarray | None = None
    confidence: float | None = None
    network_quaternion: np.ndarray | None = None
    hypotheses: np.ndarray | None = None
    hypothesis_scores: np.ndarray | None = None
    shape_probabilities: dict[str, float] | None = None
    extra: dict = field(default_factory=dict)


class Pipeline:
    """Runs network 1 on single images (and the shape retrieval when given a database).
    Without ``shape_db``, several threads may call one Pipeline at once after a first call (``warm_up``):
    a call keeps nothing on it but ``intra_op_threads`` (perception_node's ``inference_workers``); the
    run-time setters are not synchronised with calls in flight. With ``shape_db``: one caller at a time.

    ``shape_db``: retrieve a CAD model and the final rotation per object with ``policy`` (the
    resolution policy, default :class:`ResolutionPolicy`'s defaults; settable at run time: assign a
    new one, e.g. ``pipeline.policy = pipeline.policy.replace(silhouette_check=False)``). ``mask_threshold``: mask-head probability at which
    a pixel belongs to the object's ``mask`` (settable at run time). ``num_threads``: torch's
    intra-op CPU threads, set on the thread that runs each call (torch keeps the count per thread);
    0 keeps torch's default. ``intra_op_threads`` reports the count the last call ran with.
    ``viewpoint_checkpoint``: the crop viewpoint stage (:mod:`scene3d_ros.model.viewpoint`) run
    after network 1 on every kept detection (default: the shipped one, when there is one; ``""``:
    none), giving ``viewpoint_k`` rotation hypotheses per object for the resolution policy;
    ``viewpoint_mirror_average``: the stage also runs each crop's mirror image and averages the two;
    ``viewpoint_separation_deg``: the least angle between two of its hypotheses (degrees).
    ``fast_path``: on CPU, fold the networks' batch norms into their convolutions and run network
    1's convolutions channels-last (:mod:`scene3d_ros.model.fast_path`; the same outputs within
    float rounding; the speed-up is in benchmarks/results/cpu_path.md); ``False`` runs the networks as loaded.
    ``fast_path_applied`` says whether it is in use (never on CUDA).
    """

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", score_threshold: float = 0.5,
                 library: CadLibrary | None = None, max_detections: int = 100, input_size: int | None = None,
                 shape_db: ShapeDatabase | None = None, policy: ResolutionPolicy | None = None,
                 mask_threshold: float = MASK_THRESHOLD,
                 num_threads: int = 0, viewpoint_checkpoint: str | Path | None = None,
                 viewpoint_k: int = 5, fast_path: bool = True, viewpoint_mirror_average: bool = True,
                 viewpoint_separation_deg: float = HYPOTHESIS_SEPARATION_DEG) -> None:
        if int(num_threads) < 0:
            raise ValueError(f"num_threads must be >= 0 (0: torch's default), got {num_threads}")
        self.num_threads = int(num_threads)
        self.intra_op_threads = self._use_threads()
        self.checkpoint = Path(checkpoint) if checkpoint else default_model_path()
        self.device = resolve_device(device)
        self.model = build_model_from_checkpoint(self.checkpoint, self.device)
        if input_size is not None:  # the shorter side the network resizes every image to, pixels
            self.model.set_input_size(input_size)
        self.classes = self.model.classes
        # the network's own post-processing thresholds (from its config); the pipeline raises them
        # so the mask, pose and descriptor heads and the mask pasting run only on kept detections
        self._network_score_thresh = float(self.model.config.detector.box_score_thresh)
        self._network_detections = int(self.model.config.detector.box_detections_per_img)
        self._score_threshold, self._max_detections = float(score_threshold), int(max_detections)
        self._configure_network()
        self.library = library or CadLibrary.load()
        self._model_points = ModelPoints(self.library)
        self._category_sizes = self._median_sizes(self.library)
        self.viewpoint_stage: ViewpointStage | None = None
        if viewpoint_checkpoint is None and default_viewpoint_model_path().is_file():
            viewpoint_checkpoint = default_viewpoint_model_path()
        if viewpoint_checkpoint:
            network = build_viewpoint_model(viewpoint_checkpoint, self.device, expected_classes=self.classes)
            self.viewpoint_stage = ViewpointStage(network, self.classes, viewpoint_k,
                                                  category_symmetries(self.library, self.classes),
                                                  mirror_average=viewpoint_mirror_average,
                                                  separation_deg=viewpoint_separation_deg)
        self.fast_path_applied = bool(fast_path) and self.device.type == "cpu"
        if self.fast_path_applied:
            apply_fast_path(self.model, self.viewpoint_stage.model if self.viewpoint_stage is not None else None)
        self.shape_db = shape_db
        self.policy = policy or ResolutionPolicy()
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {mask_threshold}")
        self.mask_threshold = float(mask_threshold)

    @property
    def score_threshold(self) -> float:
        """Minimum detection score in [0, 1] (settable at run time)."""
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self._score_threshold = float(value)
        self._configure_network()

    @property
    def max_detections(self) -> int:
        """At most this many objects per image, highest scores first (settable at run time)."""
        return self._max_detections

    @max_detections.setter
    def max_detections(self, value: int) -> None:
        self._max_detections = int(value)
        self._configure_network()

    def _configure_network(self) -> None:
        """The network's post-processing keeps what the pipeline keeps (never less than its config)."""
        if self.model is None:  # closed
            return
        # torchvision keeps scores > score_thresh (float32); the pipeline keeps scores >= threshold
        inclusive = float(np.nextafter(np.float32(self._score_threshold), np.float32(-np.inf)))
        self.model.set_detection_limits(max(self._network_score_thresh, inclusive),
                                        max(1, min(self._network_detections, self._max_detections)))

    @staticmethod
    def _median_sizes(library: CadLibrary) -> dict[str, np.ndarray]:
        """Per-category median model extents (metres): the 3D box size before retrieval."""
        return {c: np.median([m.extents for m in library.by_category(c)], axis=0) for c in library.categories}

    def _use_threads(self) -> int:
        """Apply ``num_threads`` to the calling thread (0: leave torch's default); the count in use."""
        if self.num_threads and torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)
        return torch.get_num_threads()

    def __call__(self, rgb: np.ndarray, intrinsics: CameraIntrinsics) -> list[DetectedObject]:
        """Objects in ``rgb`` (HxWx3 uint8) seen with ``intrinsics``, by descending score."""
        self.intra_op_threads = self._use_threads()
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        if (rgb.shape[1], rgb.shape[0]) != (intrinsics.width, intrinsics.height):
            raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but the intrinsics are for "
                             f"{intrinsics.width}x{intrinsics.height}")
        image = torch.from_numpy(np.require(rgb, requirements=("C", "W"))).to(self.device).permute(2, 0, 1).float().div_(255.0)
        k = torch.as_tensor(intrinsics.matrix, dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            result = self.model([image], intrinsics=[k])[0]
        keep = torch.nonzero(result["scores"] >= self.score_threshold).flatten()[: self.max_detections]
        hypotheses = []
        if self.viewpoint_stage is not None:
            hypotheses = self.viewpoint_stage.predict(image, result["boxes"][keep], result["labels"][keep], k)
        result = {key: value[keep].cpu().numpy() for key, value in result.items() if torch.is_tensor(value)}
        objects = []
        for i in range(len(result["scores"])):
            category = self.classes[int(result["labels"][i]) - 1]
            objects.append(DetectedObject(
                category=category, label=int(result["labels"][i]), score=float(result["scores"][i]),
                box=result["boxes"][i].astype(np.float64),
                mask=(result["masks"][i, 0] >= self.mask_threshold) if "masks" in result else None,
                quaternion=canonical_quaternion(result["quaternions"][i].astype(np.float64)),
                translation=result["translations"][i].astype(np.float64),
                size=self._category_sizes.get(category, np.ones(3)).astype(np.float64),
                descriptor=result["descriptors"][i] if "descriptors" in result else None,
                allocentric_quaternion=(result["allocentric_quaternions"][i].astype(np.float64)
                                        if "allocentric_quaternions" in result else None),
                box_mask=result["box_masks"][i] if "box_masks" in result else None,
            ))
            objects[-1].network_quaternion = objects[-1].quaternion
            if hypotheses:
                h = hypotheses[i]
                objects[-1].hypotheses = matrix_to_quaternion(h.rotations)
                objects[-1].hypothesis_scores = h.scores
                objects[-1].shape_probabilities = h.shapes
                objects[-1].quaternion = objects[-1].hypotheses[0]
                if h.box_mask is not None:
                    objects[-1].box_mask = h.box_mask
        if self.shape_db is not None:
            self.retrieve(objects, intrinsics)
        return objects

    def retrieve(self, objects: list[DetectedObject], intrinsics: CameraIntrinsics) -> None:
        """Fill each object's ``model_id``, ``fallback``, ``retrieval_distance``, ``size``,
        ``model_quaternion``, ``model_translation`` and ``confidence`` from the resolution policy."""
        usable = [o for o in objects if o.descriptor is not None and o.allocentric_quaternion is not None]
        queries = [ObjectQuery.from_egocentric(o.category, o.descriptor,
                                               o.quaternion if o.hypotheses is None else o.hypotheses, o.translation,
                                               mask=o.box_mask, intrinsics=intrinsics,
                                               probabilities=o.hypothesis_scores, box=o.box,
                                               shape_probabilities=o.shape_probabilities) for o in usable]
        for obj, result in zip(usable, self.policy.resolve(self.shape_db, queries, shapes=self._model_points),
                               strict=True):
            obj.fallback, obj.retrieval_distance = result.fallback, float(result.distance)
            obj.model_quaternion, obj.confidence = np.asarray(result.quaternion), result.confidence
            obj.model_translation = np.asarray(result.translation)
            if result.model_id is not None:
                obj.model_id = result.model_id
                obj.size = np.asarray(self.library.get(result.model_id).extents, dtype=np.float64)

    def warm_up(self, width: int = 320, height: int = 240) -> None:
        """One inference on a blank image, so the first real frame is not slowed by lazy set-up."""
        self(np.zeros((height, width, 3), np.uint8), CameraIntrinsics.from_fov(width, height, 60.0))

    def close(self) -> None:
        """Release the network (and the GPU memory it held)."""
        self.model = None
        self.viewpoint_stage = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
