"""Speed of the crop viewpoint stage: training throughput and inference per object / per frame.

    .venv/bin/python benchmarks/bench_viewpoint.py [--checkpoint PATH] [--threads 2] [--reps 20]
        [--train-steps 30] [--name viewpoint_speed]

Training: forward + backward + AdamW step on batches of ``data.batch_size`` (32) crops of the
configured size (config/train_viewpoint.yaml), median over steps after 2 warm-up steps, once on a
fixed batch (compute only) and once end to end from a freshly generated (60-scene) dataset through
the DataLoader with its workers (what a real run gets: decoding, cropping, jitter, mirror).
Inference: :class:`~scene3d_ros.model.viewpoint.ViewpointStage` (crop cutting, the network, the
top-k decoding) on one 640x480 rendered frame, for 1 and for 5 objects, median over ``--reps``,
with mirror averaging (the default: each crop and its mirror image in one batch) and in one pass.
Weights do not change the speed: the checkpoint (default: a randomly initialised network) is
only for timing a shipped model as shipped. Writes benchmarks/results/<name>.md and .json with
the machine's load before and after (``os.getloadavg``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, command_line, machine, timed_ms, wait_until_quiet

from scene3d_ros import CATEGORIES
from scene3d_ros.data.crops import ObjectCropDataset, collate_crops, mirror_symmetric_model_ids
from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.model.viewpoint import (
    ViewpointNet,
    ViewpointStage,
    category_symmetries,
    encode_viewpoint,
    orbit_masks,
    viewpoint_loss,
)
from scene3d_ros.model.viewpoint_checkpoint import build_viewpoint_model
from scene3d_ros.paths import atomic_write_text, report_path
from scene3d_ros.training.datasets import data_loader
from scene3d_ros.training.viewpoint import build_viewpoint_optimizer, load_viewpoint_train_config
from scene3d_ros.world.annotations import generate_annotated_scene
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.renderer import Renderer
from scene3d_ros.world.scene_sampler import SceneConfig


def bench_training(config, steps: int, workers: int, scenes: int = 60) -> dict[str, float]:
    """Median ms per step on a fixed batch, and crops/s end to end through the DataLoader."""
    model = ViewpointNet(config.model, len(CATEGORIES)).train()
    optimizer = build_viewpoint_optimizer(model, config.optim)
    bins = config.model.bins
    batch_size = config.data.batch_size
    rng = np.random.default_rng(0)
    crops = torch.rand(batch_size, 3, config.model.crop_size, config.model.crop_size)
    labels = torch.as_tensor(rng.integers(1, len(CATEGORIES) + 1, batch_size))
    rays = torch.nn.functional.normalize(torch.randn(batch_size, 3), dim=1)
    targets = [encode_viewpoint(np.eye(3), bins) for _ in range(batch_size)]
    target_bins = torch.as_tensor(np.stack([t.bins for t in targets]))
    offsets = torch.as_tensor(np.stack([t.offsets for t in targets]))

    def step(batch_crops, batch_labels, batch_rays, batch_bins, batch_offsets, symmetries) -> None:
        logits, off = model(batch_crops, batch_labels, batch_rays)[:2]
        orbits = orbit_masks(batch_bins[:, 0], symmetries, bins)
        loss = sum(viewpoint_loss(logits, off, batch_bins, batch_offsets, orbits, bins).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    fixed = timed_ms(lambda: step(crops, labels, rays, target_bins, offsets, ["none"] * batch_size), steps)
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(GenerateConfig(output=OutputConfig(num_scenes=scenes, scenes_per_shard=30, seed=99)),
                         Path(tmp) / "data", workers=1)
        library = ensure_cad_library(progress=False)
        dataset = ObjectCropDataset([SyntheticSceneDataset(Path(tmp) / "data")], config.model,
                                    config.data.augmentation, seed=0, mirror_symmetric_models=mirror_symmetric_model_ids(library))
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=batch_size * (steps + 2),
                                                 generator=torch.Generator().manual_seed(0))
        loader = data_loader(dataset, batch_size, workers, sampler, True, 0, collate_crops,
                             ("scene3d_ros.data.crops",))
        iterator = iter(loader)
        for _ in range(2):  # warm-up (worker start)
            b = next(iterator)
            step(b["crop"], b["label"], b["ray"], b["bins"], b["offsets"], b["symmetry"])
        start = time.perf_counter()
        for _ in range(steps):
            b = next(iterator)
            step(b["crop"], b["label"], b["ray"], b["bins"], b["offsets"], b["symmetry"])
        seconds = time.perf_counter() - start
        del iterator, loader
    return {"step_ms_fixed_batch": statistics.median(fixed), "crops_per_s_compute": 1e3 * batch_size / statistics.median(fixed),
            "crops_per_s_end_to_end": batch_size * steps / seconds, "batch_size": batch_size, "workers": workers}


def bench_inference(stage: ViewpointStage, reps: int) -> dict[str, float]:
    """Median ms of :meth:`ViewpointStage.predict` on a 640x480 frame for 1 and 5 objects."""
    library = ensure_cad_library(progress=False)
    frame = generate_annotated_scene(np.random.default_rng(3), library,
                                     SceneConfig(image_sizes=((640, 480),), num_objects_range=(5, 6)), Renderer())
    image = torch.from_numpy(frame.rendered.rgb.copy()).permute(2, 0, 1).float().div(255.0)
    k = torch.as_tensor(frame.scene.intrinsics.matrix)
    boxes = torch.tensor([a.box for a in frame.annotations], dtype=torch.float32)
    labels = torch.tensor([a.label for a in frame.annotations])
    if len(boxes) < 5:  # repeat boxes to get five objects
        boxes, labels = boxes.repeat(5, 1)[:5], labels.repeat(5)[:5]
    out = {}
    default = stage.mirror_average
    for mirror, prefix in ((True, ""), (False, "single_pass_")):  # mirror-averaged (the default) and one pass
        stage.mirror_average = mirror
        for n in (1, 5):
            times = timed_ms(lambda n=n: stage.predict(image, boxes[:n], labels[:n], k), reps)
            out[f"{prefix}ms_{n}_objects"] = statistics.median(times)
            out[f"{prefix}ms_{n}_objects_p90"] = float(np.percentile(times, 90))
        out[f"{prefix}ms_per_object_in_5"] = out[f"{prefix}ms_5_objects"] / 5
    stage.mirror_average = default
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="viewpoint checkpoint (default: random weights)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--train-scenes", type=int, default=60, help="scenes generated for the end-to-end run")
    parser.add_argument("--name", default="viewpoint_speed")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for idle cores")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    busy = None if args.no_wait else wait_until_quiet(0.15, 120.0)
    load_before = os.getloadavg()
    config = load_viewpoint_train_config()
    library = ensure_cad_library(progress=False)
    if args.checkpoint:
        model = build_viewpoint_model(args.checkpoint, expected_classes=CATEGORIES)
    else:
        model = ViewpointNet(config.model, len(CATEGORIES)).eval()
    stage = ViewpointStage(model, CATEGORIES, config.data.top_k, category_symmetries(library, CATEGORIES))
    inference = bench_inference(stage, args.reps)
    training = bench_training(config, args.train_steps, args.workers, args.train_scenes)
    load_after = os.getloadavg()
    record = {"command": command_line("bench_viewpoint.py", argv), "machine": machine(), "threads": args.threads,
              "checkpoint": report_path(args.checkpoint) if args.checkpoint else "random weights",
              "crop_size": config.model.crop_size, "top_k": config.data.top_k, "busy_before": busy,
              "loadavg_before": load_before, "loadavg_after": load_after, "inference": inference, "training": training}
    lines = [
        f"# Crop viewpoint stage speed (`{record['command']}`)", "",
        f"CPU: {record['machine']['cpu']}, {args.threads} torch threads; crops {config.model.crop_size} px, "
        f"k = {config.data.top_k}; weights: {record['checkpoint']}; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} (1 min).", "",
        "| what | value |", "|---|---|",
        f"| inference, 640x480 frame, 1 object (crop + network on it and its mirror image + top-k; the default) "
        f"| {inference['ms_1_objects']:.1f} ms |",
        f"| inference, 640x480 frame, 5 objects (the default) | {inference['ms_5_objects']:.1f} ms "
        f"({inference['ms_per_object_in_5']:.1f} ms per object) |",
        f"| inference, 1 / 5 objects, one pass (`mirror_average` off) | {inference['single_pass_ms_1_objects']:.1f} / "
        f"{inference['single_pass_ms_5_objects']:.1f} ms |",
        f"| training step, batch {training['batch_size']}, fixed batch | {training['step_ms_fixed_batch']:.0f} ms "
        f"({training['crops_per_s_compute']:.1f} crops/s) |",
        f"| training end to end ({training['workers']} DataLoader workers) | "
        f"{training['crops_per_s_end_to_end']:.1f} crops/s |", "",
    ]
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.md", "\n".join(lines))
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(record, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
