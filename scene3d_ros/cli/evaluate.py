"""``evaluate``: Pascal3D+-protocol evaluation of a checkpoint (MedErr, Acc_pi/6, AP, ...).

    evaluate --checkpoint PATH --data DIR [--dataset synthetic|pascal3d] [--split val]
             [--setting detected|gt_boxes|both] [--max-images N] [--device auto|cpu|cuda]
             [--output DIR] [--config config/evaluate.yaml] [--set evaluate.batch_size=4 ...]
             [--set evaluate.retrieval.enabled=true evaluate.retrieval.unseen_models=[id,...] ...]

Settings (see :mod:`scene3d_ros.evaluation`): ``detected`` runs the whole network and matches
its detections to the ground truth; ``gt_boxes`` runs the mask and pose heads on the
ground-truth boxes (the paper's Table 1, :meth:`Scene3DNet.predict_with_boxes`). Writes
``<output>/evaluation_<setting>.md`` and ``.json`` per setting and ``<output>/evaluation.md``
(checkpoint and its sha256, dataset and its seed, image count, device, wall time, then every
table), and prints the latter.

Top-1 shape retrieval (:mod:`scene3d_ros.retrieval.evaluation`; section ``evaluate.retrieval``
of the config): the objects of each setting are resolved by the resolution policy with the
ground-truth pose prior (ground-truth boxes only), the predicted pose prior and no prior, and
reported per category, for seen and unseen (``unseen_models``) models (shape-level Top-1 first,
the paper's instance Top-1, and with the dataset's CAD library Chamfer-L1 and F-score between the
retrieved and the true mesh), in
``evaluation_retrieval.md/.json`` and a section of ``evaluation.md``. When ``unseen_models`` is
empty (the default) and the synthetic dataset was generated with an extended CAD library
(``build_cad_library --extra-instances K``), the library's declared ``unseen_models`` (its extra
instances, which a network trained on the default library never saw) are used. The per-setting tables'
"Top-1 retrieval" rows are the predicted-pose-prior retrievals (what ``retrieval_node`` does).
The database (``shape_db``, default ``build_shape_db``'s output) must have been built with this
checkpoint (sha256) and, for synthetic data, from the CAD library the data was generated with.
``enabled: auto`` (default) evaluates retrieval when such a database is there and otherwise
warns, says how to build it and leaves retrieval out; ``enabled: true`` makes a missing or
mismatched database (or a network without descriptor head) an error (exit code 1) before the
network runs; ``enabled: false`` leaves retrieval out.

Data: ``synthetic`` reads a folder written by ``generate_data`` (``DIR/<split>`` when that holds
a dataset, else ``DIR`` itself); ``pascal3d`` reads the Pascal3D+ release 1.1 folder with its
``train``/``val`` split files. Exit codes: 0 done, 1 bad checkpoint / data / device, 2 bad
command line or config.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from scene3d_ros import CATEGORIES, MASK_THRESHOLD
from scene3d_ros.config import ConfigError, add_config_arguments, dataclass_from_dict, load_config
from scene3d_ros.data.pascal3d import SOURCES, SPLITS, Pascal3DDataset
from scene3d_ros.data.shards import MANIFEST_NAME, sha256_file
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.evaluation import SETTINGS, Evaluator, to_markdown, write_report
from scene3d_ros.model import CheckpointError, Scene3DNet, build_model_from_checkpoint
from scene3d_ros.model.device import device_description, resolve_device
from scene3d_ros.paths import atomic_write_text, default_model_path, packaged_config_file, report_path
from scene3d_ros.retrieval import ResolutionPolicy
from scene3d_ros.retrieval.evaluation import NO_PRIOR_DEG, RetrievalEvaluator
from scene3d_ros.retrieval.evaluation import to_markdown as retrieval_to_markdown
from scene3d_ros.retrieval.shape_database import ShapeDatabase, ShapeDatabaseError, default_shape_db_path
from scene3d_ros.retrieval.shape_metrics import MeshComparison
from scene3d_ros.world.cad_library import CadLibrary, CadLibraryError

DATASETS = ("synthetic", "pascal3d")
GROUND_TRUTH_KEYS = ("boxes", "labels", "masks", "quaternions", "translations", "model_ids", "occluded",
                     "truncated", "symmetries")
"""The dataset target keys the :class:`Evaluator` reads (the others are left out)."""
SETTING_TITLES = {"detected": "detected boxes", "gt_boxes": "ground-truth boxes"}


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
    ``silhouette_max_angle_deg`` (degrees), ``azimuth_flips``.
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
                                silhouette_candidates=self.silhouette_candidates, azimuth_flips=self.azimuth_flips)


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
                              database_path=report_path(path), subtypes=subtypes, shapes=shapes)


def _collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[tuple, tuple]:
    """A batch as (images, targets): detection images differ in size, so they are not stacked."""
    return tuple(zip(*batch, strict=True))


def ground_truth(target: dict[str, Any]) -> dict[str, Any]:
    """What the :class:`Evaluator` reads of a dataset target (:data:`GROUND_TRUTH_KEYS` present in it)."""
    return {key: target[key] for key in GROUND_TRUTH_KEYS if key in target}


# --------------------------------------------------------------------------- evaluation
def evaluate(model: Scene3DNet, dataset: Dataset, settings: Sequence[str], device: torch.device,
             config: EvaluateConfig, retrieval: RetrievalEvaluator | None = None) -> tuple[dict[str, Evaluator], bool]:
    """Run ``model`` over ``dataset`` once per setting and feed every image into that setting's
    :class:`Evaluator` (and into ``retrieval``, whose predicted-pose-prior model ids become the
    predictions' ``model_ids``). Camera matrices ``K`` are taken from the targets when all have one.

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
                for prediction, target in zip(predictions, targets, strict=True):
                    gt = ground_truth(target)
                    if retrieval is not None:
                        prediction = {**prediction, "model_ids": retrieval.add(setting, prediction, gt)}
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
            for setting in settings:
                if setting == "detected":
                    prediction = model([image], intrinsics=[target["K"]])[0]
                else:
                    prediction = model.predict_with_boxes([image], [target["boxes"]], [target["labels"]],
                                                          [target["K"]])[0]
                for sink in sinks:
                    sink(setting, prediction, gt)
    return count


# --------------------------------------------------------------------------- reports
def _demote_headings(markdown: str) -> str:
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"


def run_header(run: dict[str, Any]) -> str:
    """Markdown bullet list of the run description (see :func:`main`)."""
    data = run["dataset"]
    split = f", split {data['split']}" if data["split"] else ""
    seed = "n/a" if data["seed"] is None else str(data["seed"])
    symmetry = ("yes" if run["symmetry_aware"] else
                "no (the dataset's targets carry no `symmetries`: symmetric objects count their symmetric "
                "equivalents as errors)")
    lines = [
        f"- checkpoint: `{run['checkpoint']}`",
        f"- checkpoint sha256: `{run['checkpoint_sha256']}`",
        f"- dataset: {data['kind']} `{data['path']}`{split}",
        f"- dataset manifest seed: {seed}",
        f"- images: {run['num_images']}; difficult objects {'included' if run['include_difficult'] else 'excluded'}",
        f"- device: {run['device']}",
        f"- wall time: {run['wall_time_s']:.1f} s",
        f"- symmetry-aware rotation errors: {symmetry}",
    ]
    if "mask_threshold" in run:
        lines.append(f"- mask threshold: {run['mask_threshold']:g} (mask probability a pixel needs to count as the object's)")
    return "\n".join(lines) + "\n"


RETRIEVAL_TITLE = "Top-1 shape retrieval"


def write_reports(summaries: dict[str, dict[str, Any]], run: dict[str, Any], output: Path,
                  retrieval: dict[str, Any] | str | None = None) -> str:
    """Write ``evaluation_<setting>.md/.json`` (the summary plus ``run``), with a retrieval summary
    ``evaluation_retrieval.md/.json``, and the combined ``evaluation.md`` into ``output``; returns
    the combined Markdown. ``retrieval``: the :meth:`RetrievalEvaluator.summary`, or a string
    saying why retrieval was skipped, or None (not asked for)."""
    parts = [f"# Evaluation of {Path(run['checkpoint']).name}", "", run_header(run)]
    for setting, summary in summaries.items():
        title = f"Evaluation with {SETTING_TITLES[setting]}"
        write_report({**summary, "run": run}, output, f"evaluation_{setting}", title)
        parts.append(_demote_headings(to_markdown(summary, title)))
    if isinstance(retrieval, dict):
        write_report({**retrieval, "run": run}, output, "evaluation_retrieval", RETRIEVAL_TITLE, retrieval_to_markdown)
        parts.append(_demote_headings(retrieval_to_markdown(retrieval, RETRIEVAL_TITLE)))
    elif isinstance(retrieval, str):
        parts.append(f"## {RETRIEVAL_TITLE}\n\nSkipped: {retrieval}\n")
    combined = "\n".join(parts)
    atomic_write_text(output / "evaluation.md", combined)
    return combined


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint file (save_checkpoint format; default: the shipped model)")
    parser.add_argument("--data", required=True, type=Path,
                        help="dataset folder: generate_data output (synthetic) or PASCAL3D+_release1.1 (pascal3d)")
    parser.add_argument("--dataset", choices=DATASETS, default="synthetic", help="dataset kind (default synthetic)")
    parser.add_argument("--split", default="val",
                        help="split: DATA/<split> for synthetic when it exists, train|val for pascal3d (default val)")
    parser.add_argument("--setting", choices=(*SETTINGS, "both"), default="both",
                        help="detected, gt_boxes (heads run on the ground-truth boxes) or both (default)")
    parser.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = cuda when available (default)")
    parser.add_argument("--output", type=Path, default=None, help="report folder (default: evaluate.output)")
    add_config_arguments(parser, default_config=packaged_config_file("evaluate.yaml"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint is None:
        args.checkpoint = default_model_path()
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max-images must be >= 1")
    try:
        config = load_evaluate_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    settings = SETTINGS if args.setting == "both" else (args.setting,)
    output = args.output or Path(config.output)
    start = time.perf_counter()
    try:
        try:
            device = resolve_device(args.device)
        except ValueError as exc:
            raise EvaluationInputError(f"--device: {exc}") from exc
        dataset, data_info = open_dataset(args.dataset, args.data, args.split, config)
        model = build_model_from_checkpoint(args.checkpoint, device, expected_classes=CATEGORIES)
    except CheckpointError as exc:
        print(f"evaluate: {exc}\nevaluate: pass a checkpoint written by scene3d_ros.model.save_checkpoint "
              "(the train command writes one)", file=sys.stderr)
        return 1
    except EvaluationInputError as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 1
    checkpoint_sha256 = sha256_file(args.checkpoint)
    retrieval, retrieval_skipped = None, None
    if config.retrieval.enabled is not False:
        try:
            retrieval = open_retrieval(config.retrieval, args.checkpoint, checkpoint_sha256, model, dataset, device,
                                       config.iou_threshold)
        except EvaluationInputError as exc:
            if config.retrieval.enabled is True:
                print(f"evaluate: retrieval evaluation requested (evaluate.retrieval.enabled=true) but: {exc}",
                      file=sys.stderr)
                return 1
            retrieval_skipped = f"{exc}".replace("\n", "; ")
            print(f"evaluate: warning: skipping the Top-1 retrieval evaluation: {exc}", file=sys.stderr)
    if args.max_images is not None:
        dataset = Subset(dataset, range(min(args.max_images, len(dataset))))
    if len(dataset) == 0:
        print(f"evaluate: the dataset in {data_info['path']} has no images", file=sys.stderr)
        return 1

    evaluators, symmetry_aware = evaluate(model, dataset, settings, device, config, retrieval)
    summaries = {setting: evaluator.summary() for setting, evaluator in evaluators.items()}
    first = next(iter(evaluators.values()))
    run = {
        "checkpoint": report_path(args.checkpoint),
        "checkpoint_sha256": checkpoint_sha256,
        "dataset": data_info,
        "num_images": first.num_images,
        "include_difficult": config.include_difficult,
        "device": device_description(device),
        "wall_time_s": time.perf_counter() - start,
        "symmetry_aware": symmetry_aware,
        "mask_threshold": config.mask_threshold,
    }
    markdown = write_reports(summaries, run, output, retrieval.summary() if retrieval is not None else retrieval_skipped)
    print(markdown)
    names = [*settings, "retrieval"] if retrieval is not None else settings
    print(f"evaluate: reports written to {output}/ (evaluation.md, "
          + ", ".join(f"evaluation_{s}.md/.json" for s in names) + ")", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
