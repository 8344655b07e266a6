"""Network speed on this machine: inference per image at 256x256 and 640x480, and a training step.

    .venv/bin/python benchmarks/bench_model.py [--checkpoint PATH] [--threads 2] [--reps 10]
        [--devices cpu,cuda] [--name model_speed]

Inference: ``Scene3DNet`` in eval mode on rendered synthetic scenes (one image per call, with its
intrinsics), median over ``--reps`` calls after 2 warm-up calls, per image size. The default
checkpoint is the shipped model (models/scene3d_default.pt) when present, else a freshly built
default model (ImageNet backbone, untrained heads: every image then yields the maximum number of
detections, the worst case for the heads). Training step: forward + backward + AdamW step on
batches of 4 images at 256x256 with their triplet depth views (data loading excluded), median
over ``--reps`` steps after 2 warm-up steps (float32, no AMP), once training everything and once
training only the pose trunk and the rotation/translation/descriptor heads (``POSE_HEADS`` as
``optim.trainable``: the rest frozen, the frozen mask head not run). ``--devices`` picks the devices
(CUDA only when a GPU is present). Writes benchmarks/results/<name>.md and .json; the CUDA record
``model_speed_cuda.md`` came from ``--devices cuda --name model_speed_cuda --reps 20`` on a lent
H200 machine.

``--save-inputs FILE`` renders the inputs (the frames of both sizes and the training batches) and
saves them to FILE (torch.save, ~10 MB) without timing anything; ``--inputs FILE`` times on them
instead of rendering, so a machine without open3d (a lent GPU machine: scripts/gpu/check.sh)
can run this benchmark.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, command_line, machine, timed_ms, wait_until_quiet

from scene3d_ros.model import build_model, build_model_from_checkpoint
from scene3d_ros.paths import atomic_write_text, default_model_path, report_path
from scene3d_ros.training.detector import TrainConfig, targets_to_device
from scene3d_ros.training.optim import build_optimizer, freeze_parameters

SIZES = ((256, 256), (640, 480))
POSE_HEADS = ("roi_heads.pose_head", "roi_heads.rotation_predictor", "roi_heads.translation_predictor",
              "roi_heads.descriptor_head.fc")


def _median_ms(fn, reps: int, warmup: int = 2) -> tuple[float, list[float]]:
    times = timed_ms(fn, reps, warmup)
    return statistics.median(times), times


def _time_inference(model, images: list[torch.Tensor], ks: list[torch.Tensor], reps: int) -> dict:
    calls = {"n": 0, "detections": []}

    def call() -> None:
        i = calls["n"] % len(images)
        calls["n"] += 1
        with torch.inference_mode():
            result = model([images[i]], intrinsics=[ks[i]])[0]
        calls["detections"].append(len(result["boxes"]))

    median, times = _median_ms(call, reps)
    return {"median_ms": round(median, 1), "min_ms": round(min(times), 1), "fps": round(1e3 / median, 2),
            "mean_detections": round(float(np.mean(calls["detections"])), 1)}


def make_inputs(tmp: Path) -> dict:
    """What the benchmark times, rendered here (open3d): ``frames`` per size ``"WxH"``, 4 pairs of an
    RGB uint8 (H, W, 3) image and its camera matrix K (3, 3) in pixels; ``batches``: 4 collated
    training batches of 4 scenes at 256x256 with their triplet depth views (``collate_scenes``)."""
    from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
    from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
    from scene3d_ros.data.triplet_views import TripletViewDataset, collate_scenes
    from scene3d_ros.model.config import ModelConfig
    from scene3d_ros.world.annotations import generate_annotated_scene
    from scene3d_ros.world.cad_library import ensure_cad_library
    from scene3d_ros.world.renderer import Renderer
    from scene3d_ros.world.scene_sampler import SceneConfig

    library, renderer = ensure_cad_library(progress=False), Renderer()
    frames = {}
    for width, height in SIZES:
        rng = np.random.default_rng(7)
        scenes = [generate_annotated_scene(rng, library, SceneConfig(image_sizes=((width, height),)), renderer)
                  for _ in range(4)]
        frames[f"{width}x{height}"] = [(s.rendered.rgb, np.asarray(s.scene.intrinsics.matrix, np.float32))
                                       for s in scenes]
    data_dir = tmp / "data"
    generate_dataset(GenerateConfig(scene=SceneConfig(image_sizes=((256, 256),)),
                                    output=OutputConfig(num_scenes=16, scenes_per_shard=8, seed=3),
                                    cad_library=str(library.root)), data_dir, workers=1, progress=None)
    dataset = TripletViewDataset(SyntheticSceneDataset(data_dir), library.root,
                                 ModelConfig().depth_encoder.view_size_px,
                                 TrainConfig().data.same_category_negative_probability, seed=0)
    batches = [collate_scenes([dataset[4 * b + i] for i in range(4)]) for b in range(4)]
    return {"frames": frames, "batches": batches}


def bench_inference(model, frames: dict[str, list], device: torch.device, reps: int) -> dict[str, dict]:
    out = {}
    for width, height in SIZES:
        pairs = frames[f"{width}x{height}"]
        images = [torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1).float().div(255).to(device) for rgb, _ in pairs]
        ks = [torch.as_tensor(k, dtype=torch.float32, device=device) for _, k in pairs]
        out[f"{width}x{height}"] = entry = _time_inference(model, images, ks, reps)
        print(f"  inference {width}x{height} on {device}: {entry['median_ms']} ms (median of {reps})", flush=True)
    return out


def bench_train_step(batches: list, device: torch.device, reps: int) -> dict:
    """Training step times on ``batches`` (:func:`make_inputs`): ``train_step`` (every parameter
    trained) and ``train_step_pose_heads`` (``POSE_HEADS`` only)."""
    config = TrainConfig()
    out = {}
    for name, trainable in (("train_step", ()), ("train_step_pose_heads", POSE_HEADS)):
        model = build_model().to(device).train()
        freeze_parameters(model, trainable)
        optimizer = build_optimizer(model, config.optim)
        counter = {"i": 0}

        def step(model=model, optimizer=optimizer, counter=counter):
            images, targets = targets_to_device(*batches[counter["i"] % len(batches)], device)
            counter["i"] += 1
            losses = model(images, targets)
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimizer.step()

        median, times = _median_ms(step, reps)
        print(f"  train step (batch 4, 256x256, {name}) on {device}: {median:.0f} ms", flush=True)
        out[name] = {"median_ms": round(median, 1), "min_ms": round(min(times), 1), "batch": 4,
                     "images_per_s": round(4e3 / median, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="model to time (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle cores first")
    parser.add_argument("--devices", default="cpu,cuda",
                        help="comma-separated devices to time (default cpu,cuda; cuda only where available)")
    parser.add_argument("--name", default="model_speed",
                        help="results file stem under benchmarks/results (default model_speed)")
    parser.add_argument("--inputs", type=Path, default=None, help="time on the inputs saved by --save-inputs "
                        "instead of rendering them")
    parser.add_argument("--save-inputs", type=Path, default=None, help="render the inputs, save them here, exit")
    args = parser.parse_args(argv)
    if args.save_inputs:
        with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
            torch.save(make_inputs(Path(tmp)), args.save_inputs)
        print(f"wrote {args.save_inputs}")
        return 0
    wanted = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not set(wanted) <= {"cpu", "cuda"}:
        parser.error(f"--devices: cpu and/or cuda, got {args.devices!r}")
    devices = [torch.device(d) for d in wanted if d == "cpu" or torch.cuda.is_available()]
    if not devices:
        parser.error(f"none of the devices {args.devices!r} is available here")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.inputs:
        inputs = torch.load(args.inputs, weights_only=False)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
            inputs = make_inputs(Path(tmp))
    checkpoint = args.checkpoint or (default_model_path() if default_model_path().exists() else None)
    busy = wait_until_quiet(0.15, args.max_wait)
    result = {"machine": machine(), "threads": args.threads, "reps": args.reps, "cores_busy_before": round(busy, 2),
              "checkpoint": report_path(checkpoint) if checkpoint else "freshly built default model (untrained heads)",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "devices": {}}
    for device in devices:
        name = torch.cuda.get_device_name(0) if device.type == "cuda" else result["machine"]["cpu"]
        model = (build_model_from_checkpoint(checkpoint, device) if checkpoint
                 else build_model().to(device).eval())
        entry = {"name": name, "inference": bench_inference(model, inputs["frames"], device, args.reps)}
        entry.update(bench_train_step(inputs["batches"], device, args.reps))
        result["devices"][device.type] = entry
    if args.no_write:
        print(json.dumps(result, indent=1))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(result, indent=1) + "\n")
    lines = ["# Network speed", "",
             f"Machine: {result['machine']['nproc']} cores, {result['machine']['cpu']}; torch {torch.__version__}, "
             f"{args.threads} CPU threads. Command: `{command_line('bench_model.py', argv)}` "
             f"({result['date']}); "
             f"median of {args.reps} runs after 2 warm-ups; cores busy before: {busy:.0%}.",
             f"Model: {result['checkpoint']}.", "",
             "| device | inference 256x256 (ms) | inference 640x480 (ms) | FPS 640x480 | detections/image "
             "(256 / 640) | train step, batch 4 @ 256 (ms): all / pose heads only |", "|---|---|---|---|---|---|"]
    for entry in result["devices"].values():
        a, b = entry["inference"]["256x256"], entry["inference"]["640x480"]
        lines.append(f"| {entry['name']} | {a['median_ms']} | {b['median_ms']} | {b['fps']} | "
                     f"{a['mean_detections']} / {b['mean_detections']} | {entry['train_step']['median_ms']} / "
                     f"{entry['train_step_pose_heads']['median_ms']} |")
    lines += ["", "The network resizes every input so its shorter side is the last `detector.min_size` "
              "(320 px) and the longer side at most `max_size`; a 640x480 image runs at 427x320.", ""]
    atomic_write_text(RESULTS / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
