"""Running a checkpoint over a dataset into the evaluators: the ``evaluate`` config
(:class:`EvaluateConfig`, ``config/evaluate.yaml``), the datasets (:func:`open_dataset`), the
retrieval evaluator over the shape database (:func:`open_retrieval`) and the prediction loops
(:func:`evaluate`, batched; :func:`feed_predictions`, one image at a time for parameter sweeps).
The ``evaluate`` command (:mod:`scene3d_ros.cli.evaluate`) and the sweep scripts call these.

Settings (:data:`scene3d_ros.evaluation.SETTINGS`): ``detected`` runs the whole network and
matches its detections to the ground truth; ``gt_boxes`` runs the mask and pose heads on the
ground-truth boxes (:meth:`Scene3DNet.predict_with_boxes`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.config import ConfigError, dataclass_from_dict, load_config
from scene3d_ros.data.pascal3d import SOURCES, SPLITS, Pascal3DDataset
from scene3d_ros.data.shards import MANIFEST_NAME
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation.metrics import Evaluator
from scene3d_ros.evaluation.viewpoint import ViewpointComparison
from scene3d_ros.geometry import CameraIntrinsics
from scene3d_ros.model import Scene3DNet
from scene3d_ros.model.translation import default_intrinsics
from scene3d_ros.paths import report_path
from scene3d_ros.retrieval import ResolutionPolicy
from scene3d_ros.retrieval.evaluation import NO_PRIOR_DEG, RetrievalEvaluator
from scene3d_ros.retrieval.shape_database import ShapeDatabase, ShapeDatabaseError, default_shape_db_path
from scene3d_ros.retrieval.shape_metrics import MeshComparison
from scene3d_ros.retrieval.translation import ModelPoints
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError

DATASETS = ("synthetic", "pascal3d")
GROUND_TRUTH_KEYS = ("boxes", "labels", "masks", "quaternions", "translations", "model_ids", "occluded",
                     "truncated", "symmetries")
"""The dataset target keys the :class:`Evaluator` reads (the others are left out)."""


class EvaluationInputError(RuntimeError):
    """The data folder or device asked for is not usable; the message says how to fix it."""


RETRIEVAL_ENABLED = ("auto", True, False)


@dataclass(frozen=True)
class RetrievalEvalConfig:
    """The ``evaluate.retrieval`` section: Top-1 shape retrieval (see the module doc).

    ``enabled``: ``auto`` (when a matching database is there), ``true`` (required: exit 1
    without one) or ``false``; ``shape_db``: database file (None = ``build_shape_db``'s default
    output); ``max_angle_deg``: pose-prior window (degrees, geodesic, allocentric; 180 = no
    prior); ``unseen_models``: ids of the CAD models never seen in training (the unseen split;
    empty = those that the dataset's CAD library declares, see :func:`dataset_cad_library`);
    the resolution policy evaluated (:class:`~scene3d_ros.retrieval.ResolutionPolicy`, same
    names, defaults and meaning; ``retrieval_node`` runs the same): ``max_angle_deg``,
    ``silhouette_check`` (also evaluate the silhouette check: its variants and its rotation),
    ``silhouette_weight``, ``silhouette_angle_weight``, ``silhouette_candidates``,
    ``silhouette_max_angle_deg`` (degrees), ``azimuth_flips``, ``hypothesis_weight``,
    ``final_rotation``, ``fit_translation``, ``camera_weight``, ``camera_models``, ``shape_weight``, ``occlusion_aware``.
    """

    enabled: bool | str = "auto"
    shape_db: str | None = None
    max_angle_deg: float = ResolutionPolicy.max_angle_deg
    unseen_models: tuple[str, ...] = ()
    silhouette_check: bool = ResolutionPolicy.silhouette_check
    silhouette_weight: float = ResolutionPolicy.silhouette_weight
    silhouette_angle_weight: float = ResolutionPolicy.silhouette_angle_weight
    silhouette_candidates: int = ResolutionPolicy.silhouette_candidates
    silhouette_max_angle_deg: float = ResolutionPolicy.silhouette_max_angle_deg
    azimuth_flips: bool = ResolutionPolicy.azimuth_flips
    hypothesis_weight: float = ResolutionPolicy.hypothesis_weight
    final_rotation: str = ResolutionPolicy.final_rotation
    fit_translation: bool = ResolutionPolicy.fit_translation
    camera_weight: float = ResolutionPolicy.camera_weight
    camera_models: int = ResolutionPolicy.camera_models
    shape_weight: float = ResolutionPolicy.shape_weight
    occlusion_aware: bool = ResolutionPolicy.occlusion_aware

    def __post_init__(self) -> None:
        if self.enabled not in RETRIEVAL_ENABLED or not isinstance(self.enabled, (bool, str)):
            raise ValueError(f"enabled must be auto, true or false, got {self.enabled!r}")
        if not 0.0 < float(self.max_angle_deg) <= NO_PRIOR_DEG:
            raise ValueError(f"max_angle_deg must be in (0, {NO_PRIOR_DEG:g}] degrees, got {self.max_angle_deg}")
        object.__setattr__(self, "unseen_models", tuple(str(m) for m in (self.unseen_models or ())))
        self.policy()

    def policy(self) -> ResolutionPolicy:
        """The configured :class:`ResolutionPolicy` (validated)."""
        return ResolutionPolicy(max_angle_deg=self.max_angle_deg, silhouette_check=self.silhouette_check,
                                silhouette_max_angle_deg=self.silhouette_max_angle_deg,
                                silhouette_weight=self.silhouette_weight,
                                silhouette_angle_weight=self.silhouette_angle_weight,
                                silhouette_candidates=self.silhouette_candidates, azimuth_flips=self.azimuth_flips,
                                hypothesis_weight=self.hypothesis_weight, final_rotation=self.final_rotation,
                                fit_translation=self.fit_translation,
                                camera_weight=self.camera_weight, camera_models=self.camera_models,
                                shape_weight=self.shape_weight, occlusion_aware=self.occlusion_aware)


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate`` section of ``config/evaluate.yaml``.

    ``batch_size``: images per forward pass; ``workers``: DataLoader processes (0 = main
    process); ``iou_threshold``: box IoU for a detection to match (detected setting);
    ``mask_threshold``: mask probability at which a pixel counts as the object's (mask AP);
    ``include_difficult``: keep ground-truth objects flagged difficult; ``pascal3d_sources``:
    Pascal3D+ parts read; ``output``: default report folder; ``retrieval``: :class:`RetrievalEvalConfig`.
    """

    batch_size: int = 2
    workers: int = 2
    iou_threshold: float = 0.5
    mask_threshold: float = MASK_THRESHOLD
    include_difficult: bool = False
    pascal3d_sources: tuple[str, ...] = ("pascal",)
    output: str = "output/evaluate"
    retrieval: RetrievalEvalConfig = RetrievalEvalConfig()

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        object.__setattr__(self, "pascal3d_sources", tuple(self.pascal3d_sources))
        if not self.pascal3d_sources or any(s not in SOURCES for s in self.pascal3d_sources):
            raise ValueError(f"pascal3d_sources must be a non-empty subset of {SOURCES}, got {self.pascal3d_sources}")
        if not isinstance(self.retrieval, RetrievalEvalConfig):
            raise ValueError(f"retrieval must be a mapping of {sorted(RetrievalEvalConfig.__dataclass_fields__)}, "
                             f"got {self.retrieval!r}")


def load_evaluate_config(path: str | Path | None, overrides: list[str] | None = None) -> EvaluateConfig:
    """The ``evaluate`` section of ``path`` (None = dataclass defaults) with ``evaluate.x=value`` overrides."""
    raw = load_config(path, overrides)
    unknown = sorted(set(raw) - {"evaluate"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown} in the evaluate config; expected only 'evaluate'")
    return dataclass_from_dict(EvaluateConfig, raw.get("evaluate"), "evaluate")


# --------------------------------------------------------------------------- inputs
class _Pascal3DTorch(Dataset):
    """Pascal3D+ records as (image, target) pairs (:meth:`Pascal3DDataset.to_torch`)."""

    def __init__(self, records: Pascal3DDataset) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.records.to_torch(index)


def open_dataset(kind: str, data: Path, split: str, config: EvaluateConfig) -> tuple[Dataset, dict[str, Any]]:
    """The (image, target) dataset and its description (``kind``, ``path``, ``split``, ``seed``).

    Raises :class:`EvaluationInputError` naming the folder and how to create it.
    """
    if kind == "synthetic":
        root = data / split if (data / split / MANIFEST_NAME).is_file() else data
        if not (root / MANIFEST_NAME).is_file():
            raise EvaluationInputError(
                f"no synthetic dataset in {data} (no {MANIFEST_NAME} in it nor in {data / split}): create one "
                f"with `generate_data --output {data / split} --set output.seed=1 output.num_scenes=200` "
                "(use a seed other than the training set's)")
        try:
            dataset = SyntheticSceneDataset(root, include_difficult=config.include_difficult)
        except (FileNotFoundError, RuntimeError) as exc:
            raise EvaluationInputError(str(exc)) from exc
        return dataset, {"kind": kind, "path": report_path(root), "split": None, "seed": dataset.manifest.get("seed")}
    if kind == "pascal3d":
        if split not in SPLITS:
            raise EvaluationInputError(f"Pascal3D+ splits are {SPLITS}, got {split!r}")
        if not data.is_dir():
            raise EvaluationInputError(f"Pascal3D+ folder not found: {data}; download PASCAL3D+_release1.1 "
                                       "(and the VOC2012 ImageSets) and pass its folder with --data")
        try:
            records = Pascal3DDataset(data, split, sources=config.pascal3d_sources,
                                      include_difficult=config.include_difficult)
        except FileNotFoundError as exc:
            raise EvaluationInputError(str(exc)) from exc
        return _Pascal3DTorch(records), {"kind": kind, "path": report_path(records.root), "split": split,
                                         "seed": None}
    raise ValueError(f"dataset must be one of {DATASETS}, got {kind!r}")


def dataset_cad_library(library_root: str | None, library_checksum: str | None) -> CadLibrary | None:
    """The CAD library a synthetic dataset was generated with, or None with a warning on stderr.

    ``library_root``: the dataset manifest's ``config.cad_library`` (None = the default library);
    ``library_checksum``: the manifest's ``identity.cad_library_checksum``. None when the library
    cannot be read or has changed since the data was generated: then every model counts as seen
    (unless ``evaluate.retrieval.unseen_models`` is set) and the report has no sub-type Top-1.
    """
    hint = ("every model counts as seen (pass --set evaluate.retrieval.unseen_models=[id,...] to name the unseen "
            "ones) and the sub-type Top-1 is left out")
    try:
        library = CadLibrary.load(library_root)
    except CadLibraryError as exc:
        print(f"evaluate: warning: cannot read the dataset's CAD library: {exc}\nevaluate: {hint}", file=sys.stderr)
        return None
    if library_checksum is not None and library.checksum != library_checksum:
        print(f"evaluate: warning: the CAD library at {library.root} changed since the dataset was generated "
              f"(checksum {library.checksum[:12]}..., the dataset's {library_checksum[:12]}...): {hint}",
              file=sys.stderr)
        return None
    if library.unseen_models:
        print(f"evaluate: unseen split: the {len(library.unseen_models)} unseen models declared by the CAD library at "
              f"{library.root} ({library.extra_instances} extra instance(s) per sub-type)", file=sys.stderr)
    return library


def open_retrieval(config: RetrievalEvalConfig, checkpoint: Path, checkpoint_sha256: str, model: Scene3DNet,
                   dataset: Dataset, device: torch.device, iou_threshold: float) -> RetrievalEvaluator:
    """The :class:`RetrievalEvaluator` over the configured shape database.

    Raises :class:`EvaluationInputError` saying why retrieval cannot be evaluated and how to fix
    it: a network without descriptor or rotation head, a missing or unreadable database, or one
    built with another checkpoint or from another CAD library than the dataset's. The unseen models
    are ``config.unseen_models``, or when empty those the dataset's library declares; the library
    also gives the models' sub-types (:func:`dataset_cad_library`).
    """
    heads = model.roi_heads
    if not (heads.has_descriptor() and heads.has_rotation()):
        raise EvaluationInputError(f"{checkpoint} has no descriptor or rotation head: it cannot retrieve shapes")
    path = Path(config.shape_db).expanduser() if config.shape_db else default_shape_db_path()
    manifest = getattr(dataset, "manifest", None) or {}  # synthetic data only
    library_checksum = manifest.get("identity", {}).get("cad_library_checksum")
    library_root = manifest.get("config", {}).get("cad_library")  # None: the default library
    try:
        database = ShapeDatabase.load(path, expected_library_checksum=library_checksum,
                                      expected_checkpoint_sha256=checkpoint_sha256)
    except ShapeDatabaseError as exc:
        library = f" --set shape_db.cad_library={library_root}" if library_root else ""
        raise EvaluationInputError(f"{exc}\nbuild the shape database of this checkpoint with `build_shape_db "
                                   f"--checkpoint {checkpoint} --output {path}{library}`") from exc
    library = dataset_cad_library(library_root, library_checksum)
    unseen = config.unseen_models or (library.unseen_models if library is not None else ())
    subtypes = None if library is None else {m.model_id: m.subtype for m in library.models}
    shapes = None if library is None else MeshComparison(library)
    policy = config.policy()
    if policy.silhouette_check and not (heads.has_mask() and database.silhouettes is not None):
        why = "the network has no mask head" if not heads.has_mask() else \
            f"{path} holds no view silhouettes (rebuild it with build_shape_db)"
        print(f"evaluate: warning: the silhouette check is left out: {why}", file=sys.stderr)
        policy = policy.replace(silhouette_check=False)
    return RetrievalEvaluator(database, policy, unseen, CATEGORIES, iou_threshold, device=device,
                              database_path=report_path(path), subtypes=subtypes, shapes=shapes,
                              model_points=ModelPoints(library if library is not None else CadLibrary.load()))


def _collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[tuple, tuple]:
    """A batch as (images, targets): detection images differ in size, so they are not stacked."""
    return tuple(zip(*batch, strict=True))


def _numpy_k(k: Any) -> Any:
    return k.detach().cpu().double().numpy() if isinstance(k, torch.Tensor) else k


def ground_truth(target: dict[str, Any]) -> dict[str, Any]:
    """What the :class:`Evaluator` reads of a dataset target (:data:`GROUND_TRUTH_KEYS` present in it)."""
    return {key: target[key] for key in GROUND_TRUTH_KEYS if key in target}


# --------------------------------------------------------------------------- evaluation
def evaluate(model: Scene3DNet, dataset: Dataset, settings: Sequence[str], device: torch.device,
             config: EvaluateConfig, retrieval: RetrievalEvaluator | None = None,
             viewpoint: ViewpointComparison | None = None) -> tuple[dict[str, Evaluator], bool]:
    """Run ``model`` over ``dataset`` once per setting and feed every image into that setting's
    :class:`Evaluator` (and into ``retrieval``, whose predicted-pose-prior model ids become the
    predictions' ``model_ids``, and into ``viewpoint``, the crop viewpoint stage's comparison,
    which needs every target's ``K``). Camera matrices ``K`` are taken from the targets when all have one.

    Returns the evaluators and whether every target with objects carried ``symmetries`` (else the
    rotation errors of symmetric objects are not symmetry-aware).
    """
    symmetry_aware = True
    evaluators = {s: Evaluator(CATEGORIES, setting=s, iou_threshold=config.iou_threshold,
                                     mask_threshold=config.mask_threshold) for s in settings}
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=config.workers,
                        collate_fn=_collate)
    model.eval()
    with torch.inference_mode(), tqdm(total=len(dataset), unit="img", desc="evaluate") as bar:
        for images, targets in loader:
            images = [image.to(device) for image in images]
            intrinsics = [t["K"] for t in targets] if all("K" in t for t in targets) else None
            symmetry_aware &= all("symmetries" in t for t in targets if len(t["labels"]))
            for setting, evaluator in evaluators.items():
                if setting == "detected":
                    predictions = model(images, intrinsics=intrinsics)
                else:
                    predictions = model.predict_with_boxes(images, [t["boxes"] for t in targets],
                                                           [t["labels"] for t in targets], intrinsics)
                for image, prediction, target in zip(images, predictions, targets, strict=True):
                    gt = ground_truth(target)
                    if viewpoint is not None:  # the resolution policy then scores the stage's hypotheses
                        k = target["K"] if "K" in target else default_intrinsics(  # the camera the network assumed
                            int(image.shape[-2]), int(image.shape[-1]), model.config.default_hfov_deg)
                        prediction = {**prediction, **viewpoint.add(setting, prediction, gt, image, k)}
                    if retrieval is not None:  # the camera lets the policy fit translations as the nodes do
                        camera = CameraIntrinsics.from_matrix(_numpy_k(target["K"]), image.shape[-1], image.shape[-2]) \
                            if "K" in target else None
                        prediction = {**prediction, "camera": camera}
                        prediction["model_ids"] = retrieval.add(setting, prediction, gt)
                    evaluator.add(prediction, gt)
            bar.update(len(images))
    return evaluators, symmetry_aware


def feed_predictions(model: Scene3DNet, dataset: Dataset, settings: Sequence[str],
                     sinks: Sequence[Callable[[str, dict[str, Any], dict[str, Any]], Any]], num_images: int | None,
                     desc: str) -> int:
    """Run ``model`` once per image (the first ``num_images``; None = all) and setting on the CPU
    and call every one of ``sinks`` with ``(setting, prediction, ground truth)`` (parameter sweeps
    over one network pass; a :class:`RetrievalEvaluator`'s ``add`` is such a sink); returns the
    number of images."""
    count = len(dataset) if num_images is None else min(num_images, len(dataset))
    with torch.inference_mode():
        for index in tqdm(range(count), unit="img", desc=desc):
            image, target = dataset[index]
            gt = ground_truth(target)
            camera = CameraIntrinsics.from_matrix(_numpy_k(target["K"]), image.shape[-1], image.shape[-2])
            for setting in settings:
                if setting == "detected":
                    prediction = model([image], intrinsics=[target["K"]])[0]
                else:
                    prediction = model.predict_with_boxes([image], [target["boxes"]], [target["labels"]],
                                                          [target["K"]])[0]
                prediction = {**prediction, "camera": camera}
                for sink in sinks:
                    sink(setting, prediction, gt)
    return count
