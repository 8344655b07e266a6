"""``evaluate``: Pascal3D+-protocol evaluation of a checkpoint (MedErr, Acc_pi/6, AP, ...).

    evaluate --checkpoint PATH --data DIR [--dataset synthetic|pascal3d] [--split val]
             [--setting detected|gt_boxes|both] [--max-images N] [--device auto|cpu|cuda]
             [--output DIR] [--config config/evaluate.yaml] [--set evaluate.batch_size=4 ...]
             [--set evaluate.retrieval.enabled=true evaluate.retrieval.unseen_models=[id,...] ...]

The library code (config, datasets, retrieval evaluator, prediction loops) is
:mod:`scene3d_ros.evaluation.runner`; this module parses the command line and writes the reports.

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
import json
import sys
import time
from pathlib import Path
from typing import Any

from torch.utils.data import Subset

from scene3d_ros import CATEGORIES
from scene3d_ros.config import ConfigError, add_config_arguments
from scene3d_ros.data.shards import sha256_file
from scene3d_ros.evaluation import SETTINGS, to_markdown, write_report
from scene3d_ros.evaluation.runner import (
    DATASETS,
    EvaluationInputError,
    evaluate,
    load_evaluate_config,
    open_dataset,
    open_retrieval,
)
from scene3d_ros.evaluation.viewpoint import ViewpointComparison, comparison_markdown
from scene3d_ros.model import CheckpointError, build_model_from_checkpoint
from scene3d_ros.model.device import device_description, resolve_device
from scene3d_ros.model.viewpoint import HYPOTHESIS_SEPARATION_DEG, ViewpointStage, category_symmetries
from scene3d_ros.model.viewpoint_checkpoint import build_viewpoint_model
from scene3d_ros.paths import (
    atomic_write_text,
    default_model_path,
    default_viewpoint_model_path,
    packaged_config_file,
    report_path,
)
from scene3d_ros.retrieval.evaluation import to_markdown as retrieval_to_markdown
from scene3d_ros.world.cad_library import CadLibrary

SETTING_TITLES = {"detected": "detected boxes", "gt_boxes": "ground-truth boxes"}

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
    parser.add_argument("--viewpoint", default=None, metavar="CKPT",
                        help="crop viewpoint stage checkpoint to compare with network 1's rotation (default: the "
                             "shipped one when there is one; '' = none): writes evaluation_viewpoint.md/.json")
    parser.add_argument("--viewpoint-k", type=int, default=5, help="hypotheses per object of the stage (default 5)")
    parser.add_argument("--viewpoint-separation", type=float, default=HYPOTHESIS_SEPARATION_DEG,
                        help="least angle between two of the stage's hypotheses, degrees, as the nodes "
                             f"(default {HYPOTHESIS_SEPARATION_DEG:g}; 0: the k most probable bin triples)")
    parser.add_argument("--viewpoint-mirror-average", action=argparse.BooleanOptionalAction, default=True,
                        help="average the stage's outputs over each crop and its mirror image, as the nodes do "
                             "(default on)")
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

    viewpoint = None
    viewpoint_path = default_viewpoint_model_path() if args.viewpoint is None else args.viewpoint
    if viewpoint_path and (args.viewpoint or Path(viewpoint_path).is_file()):
        try:
            library = CadLibrary.load()
            stage = ViewpointStage(build_viewpoint_model(viewpoint_path, device, expected_classes=CATEGORIES), CATEGORIES,
                                   args.viewpoint_k, category_symmetries(library, CATEGORIES),
                                   mirror_average=args.viewpoint_mirror_average,
                                   separation_deg=args.viewpoint_separation)
        except (CheckpointError, ValueError) as exc:
            print(f"evaluate: --viewpoint: {exc}", file=sys.stderr)
            return 1
        viewpoint = ViewpointComparison(stage, settings, config.iou_threshold, config.mask_threshold,
                                        {m.model_id: m.shape_class for m in library.models})

    evaluators, symmetry_aware = evaluate(model, dataset, settings, device, config, retrieval, viewpoint)
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
    if viewpoint is not None:
        run["viewpoint_checkpoint"] = report_path(viewpoint_path)
        run["viewpoint_checkpoint_sha256"] = sha256_file(viewpoint_path)
        comparison = {**viewpoint.summary(), "run": run}
        title = "Rotation: network 1, the crop viewpoint stage and the best of its hypotheses"
        atomic_write_text(output / "evaluation_viewpoint.json", json.dumps(comparison, indent=1))
        atomic_write_text(output / "evaluation_viewpoint.md", comparison_markdown(comparison, title)
                          + "\n" + run_header(run))
        markdown += "\n" + _demote_headings(comparison_markdown(comparison, title))
        atomic_write_text(output / "evaluation.md", markdown)
    print(markdown)
    names = [*settings, "retrieval"] if retrieval is not None else settings
    print(f"evaluate: reports written to {output}/ (evaluation.md, "
          + ", ".join(f"evaluation_{s}.md/.json" for s in names) + ")", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
