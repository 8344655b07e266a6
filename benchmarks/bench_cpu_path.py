"""The CPU inference path: FLOPs per frame, the machine's matmul peak, the GFLOP/s achieved, and
the A/B of what a CPU-inference engineer would try, each on the whole pipeline with its outputs
checked against today's path.

    .venv/bin/python benchmarks/bench_cpu_path.py [--variants baseline,channels_last,...] [--frames 6]
        [--objects 5] [--reps 3] [--threads 2] [--size 640x480] [--checkpoint PATH]
        [--viewpoint-checkpoint PATH] [--score-threshold S] [--matmul-size 2048] [--max-wait 120]
        [--name cpu_path] [--no-write] [--quick]

1. **FLOPs** of one ``Pipeline`` call (network 1 + the crop viewpoint stage; no shape database) on
   each of ``--frames`` rendered scenes with ``--objects`` objects (seed 7), counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; RoIAlign,
   NMS, resizing and element-wise work are not FLOPs to it), broken down by module family:
   backbone (MobileNetV2 body), FPN, RPN, box head, mask head, pose + descriptor heads, and the
   crop viewpoint stage (per object). The per-object part grows with the detections, so the
   record fits GFLOP per frame = fixed + N x per-object.
2. **Matmul peak**: ``torch.matmul`` of two ``--matmul-size`` square fp32 matrices at the thread
   count used (and at 1 thread), GFLOP/s of the median and of the best call.
3. **Achieved GFLOP/s**: the mean FLOPs per frame over the median time per frame, for network 1,
   the stage and the whole call.
4. **A/B**: every variant builds its own ``Pipeline(fast_path=False)`` (the networks as loaded:
   the baseline) and applies one technique (``VARIANTS``): ``channels_last`` (network 1's
   convolutions), ``fold_bn`` (batch norms folded into the convolutions), ``fast_path`` (both:
   what ``Pipeline`` now does by default on CPU), ``int8_heads`` (dynamic int8 quantisation of
   the heads' Linear layers), ``compile`` (``torch.compile`` of the two MobileNetV2s),
   ``onnxruntime`` (backbone + FPN, box head, mask head and the stage's MobileNetV2 run by ONNX
   Runtime; optional: ``pip install onnxruntime==1.31.1 onnx==1.23.2``, else recorded as not
   installed). Its outputs on every frame are compared with the baseline's
   (:func:`compare_outputs`: the same detections, rotations within ``ROTATION_TOLERANCE_DEG``),
   then all variants are timed interleaved (one pass over the frames per variant in turn,
   ``--reps`` rounds, so a load that drifts hits them alike): median ms per frame of the whole
   call, of network 1 and of the stage, and the speed-up over the baseline. A variant that
   cannot run here (a package missing, a compiler error) is recorded with its reason, not fatal.

The load average before and after goes into the record (``os.getloadavg``), with the
``OMP_WAIT_POLICY`` in force and the intra-op threads; ``--quick`` is the smoke mode (one frame
at 160x120, one round, a 256 matmul, the cheap variants). Writes benchmarks/results/<name>.md
and .json (default cpu_path). Issue 18 keeps a variant that gives >= ``KEEP_SPEEDUP`` on the
whole pipeline with the same outputs.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, command_line, load_average, machine, render_scenes, wait_until_quiet
from torch import nn

from scene3d_ros.config import load_yaml
from scene3d_ros.evaluation.metrics import rotation_errors_deg
from scene3d_ros.model import fast_path
from scene3d_ros.model.fast_path import fold_batch_norms, network_to_channels_last
from scene3d_ros.paths import (
    atomic_write_text,
    config_dir,
    default_model_path,
    default_viewpoint_model_path,
    report_path,
)
from scene3d_ros.pipeline import DetectedObject, Pipeline

KEEP_SPEEDUP = 1.3
ROTATION_TOLERANCE_DEG = 1.0
"""Largest rotation change (degrees) a variant may make: the published rotation (the stage's best
hypothesis) and network 1's own."""
BOX_IOU_TOLERANCE = 0.95
"""Smallest IoU between a detection's box and its counterpart in the baseline."""
SCORE_TOLERANCE = 0.02
"""Largest change of a detection's score."""

FAMILIES = {
    "backbone": ("Scene3DNet.backbone.body",),
    "fpn": ("Scene3DNet.backbone.fpn",),
    "rpn": ("Scene3DNet.rpn",),
    "box_head": ("Scene3DNet.roi_heads.box_head", "Scene3DNet.roi_heads.box_predictor"),
    "mask_head": ("Scene3DNet.roi_heads.mask_head", "Scene3DNet.roi_heads.mask_predictor"),
    "pose_descriptor_heads": ("Scene3DNet.roi_heads.pose_head", "Scene3DNet.roi_heads.rotation_predictor",
                              "Scene3DNet.roi_heads.translation_predictor", "Scene3DNet.roi_heads.descriptor_head"),
    "viewpoint_stage": ("ViewpointNet",),
}
"""Module families of the FLOP breakdown: FlopCounterMode's module paths (root class name first)."""
PER_OBJECT_FAMILIES = ("mask_head", "pose_descriptor_heads", "viewpoint_stage")
"""Families that run once per kept detection (the rest run once per frame, the box head on the
RPN's proposals)."""


# =========================================================================== FLOPs and peak
def count_flops(pipeline: Pipeline, frames: list) -> list[dict]:
    """Per frame: detections, total GFLOP of one pipeline call and GFLOP per family (``FAMILIES``)."""
    from torch.utils.flop_counter import FlopCounterMode

    out = []
    for rgb, intrinsics in frames:
        with FlopCounterMode(display=False) as counter:
            objects = pipeline(rgb, intrinsics)
        counts = {module: sum(ops.values()) for module, ops in counter.get_flop_counts().items()}
        entry = {"detections": len(objects), "total_gflop": counts.get("Global", 0) / 1e9,
                 "network_gflop": counts.get("Scene3DNet", 0) / 1e9, "families": {}}
        for family, prefixes in FAMILIES.items():
            entry["families"][family] = sum(counts.get(p, 0) for p in prefixes) / 1e9
        entry["other_gflop"] = entry["total_gflop"] - sum(entry["families"].values())
        out.append(entry)
    return out


def fit_per_object(flops: list[dict]) -> dict[str, float]:
    """GFLOP per frame = fixed + N x per-object: the fixed families' mean, and the per-object
    families' GFLOP per detection (pooled over the frames)."""
    detections = sum(f["detections"] for f in flops)
    fixed = statistics.fmean(f["total_gflop"] - sum(f["families"][k] for k in PER_OBJECT_FAMILIES) for f in flops)
    per_object = {k: sum(f["families"][k] for f in flops) / detections if detections else float("nan")
                  for k in PER_OBJECT_FAMILIES}
    return {"fixed_gflop": fixed, "per_object_gflop": sum(per_object.values()), "per_object": per_object}


def matmul_peak(size: int, threads: int, reps: int = 10) -> dict[str, float]:
    """fp32 ``torch.matmul`` of two (size, size) matrices at ``threads`` intra-op threads: GFLOP/s
    of the median and of the fastest call (``2 size^3`` FLOPs each)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(size, size), torch.rand(size, size)
        for _ in range(2):
            torch.matmul(a, b)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    flop = 2.0 * size ** 3
    return {"threads": threads, "size": size, "median_gflops": flop / statistics.median(times) / 1e9,
            "best_gflops": flop / min(times) / 1e9}


# =========================================================================== output equivalence
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare_outputs(reference: list[list[DetectedObject]], candidate: list[list[DetectedObject]]) -> dict:
    """Whether ``candidate`` (per frame, a pipeline's objects) gives the same outputs as
    ``reference``: per frame the same number of detections, each matched one to one (greedily by
    box IoU, same category) with IoU >= ``BOX_IOU_TOLERANCE`` and a score within
    ``SCORE_TOLERANCE``, and the published rotation (``quaternion``) and network 1's
    (``network_quaternion``) within ``ROTATION_TOLERANCE_DEG``. Returns ``same`` and the worst
    differences (``reason`` names the first failure)."""
    worst = {"min_box_iou": 1.0, "max_score_diff": 0.0, "max_rotation_deg": 0.0, "max_network_rotation_deg": 0.0,
             "max_translation_m": 0.0}
    reason = None
    if len(reference) != len(candidate):
        return {"same": False, "reason": f"{len(candidate)} frames, expected {len(reference)}", **worst}
    for f, (ref, cand) in enumerate(zip(reference, candidate, strict=True)):
        if len(ref) != len(cand):
            reason = reason or f"frame {f}: {len(cand)} detections, baseline {len(ref)}"
            continue
        unmatched = list(range(len(cand)))
        for r in ref:
            options = [(j, _iou(r.box, cand[j].box)) for j in unmatched if cand[j].category == r.category]
            if not options:
                reason = reason or f"frame {f}: no {r.category} left to match"
                continue
            j, iou = max(options, key=lambda o: o[1])
            unmatched.remove(j)
            c = cand[j]
            rot = float(rotation_errors_deg(c.quaternion, r.quaternion)[0])
            net = float(rotation_errors_deg(c.network_quaternion, r.network_quaternion)[0])
            worst["min_box_iou"] = min(worst["min_box_iou"], iou)
            worst["max_score_diff"] = max(worst["max_score_diff"], abs(c.score - r.score))
            worst["max_rotation_deg"] = max(worst["max_rotation_deg"], rot)
            worst["max_network_rotation_deg"] = max(worst["max_network_rotation_deg"], net)
            worst["max_translation_m"] = max(worst["max_translation_m"],
                                             float(np.abs(c.translation - r.translation).max()))
            if iou < BOX_IOU_TOLERANCE:
                reason = reason or f"frame {f}: a {r.category} box moved (IoU {iou:.3f})"
            elif abs(c.score - r.score) > SCORE_TOLERANCE:
                reason = reason or f"frame {f}: a {r.category} score changed by {abs(c.score - r.score):.3f}"
            elif max(rot, net) > ROTATION_TOLERANCE_DEG:
                reason = reason or f"frame {f}: a {r.category} rotation changed by {max(rot, net):.2f} deg"
    return {"same": reason is None, "reason": reason, **worst}


# =========================================================================== variants
def apply_channels_last(pipeline: Pipeline) -> dict:
    """Network 1's convolutions channels-last alone (the stage's network is channels-last already)."""
    network_to_channels_last(pipeline.model)
    return {}


def apply_fold_bn(pipeline: Pipeline) -> dict:
    """Batch norms folded into the convolutions before them alone (network 1's backbone, the stage's MobileNetV2)."""
    folded = fold_batch_norms(pipeline.model)
    if pipeline.viewpoint_stage is not None:
        folded += fold_batch_norms(pipeline.viewpoint_stage.model)
    return {"folded_batch_norms": folded}


def apply_fast_path(pipeline: Pipeline) -> dict:
    """Both (:mod:`scene3d_ros.model.fast_path`), as ``Pipeline(fast_path=True)`` applies them."""
    return {"folded_batch_norms": fast_path.apply_fast_path(
        pipeline.model, pipeline.viewpoint_stage.model if pipeline.viewpoint_stage is not None else None)}


def apply_int8_heads(pipeline: Pipeline) -> dict:
    """Dynamic int8 quantisation (weights int8, activations quantised per call) of every Linear
    layer of network 1's ROI heads (box, pose, descriptor) and of the stage's head."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(pipeline.model.roi_heads, {nn.Linear}, dtype=torch.qint8, inplace=True)
        if pipeline.viewpoint_stage is not None:
            stage = pipeline.viewpoint_stage.model
            for name in ("trunk", "logits", "offsets"):
                setattr(stage, name, quantize_dynamic(getattr(stage, name), {nn.Linear}, dtype=torch.qint8))
    return {}


def apply_compile(pipeline: Pipeline, frames: list) -> dict:
    """``torch.compile`` (inductor, frozen weights: it folds the batch norms itself) of network 1's
    backbone + FPN (fixed shapes: one image size) and of the stage's MobileNetV2 features (the
    batch, one crop per detection, turns dynamic at the second detection count: a recompile),
    compiled here on the frames."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    pipeline.model.backbone = torch.compile(pipeline.model.backbone, dynamic=False)
    if pipeline.viewpoint_stage is not None:
        stage = pipeline.viewpoint_stage.model
        stage.features = torch.compile(stage.features)
    start = time.perf_counter()
    for rgb, intrinsics in frames:  # every detection count the stage sees is a shape to compile
        pipeline(rgb, intrinsics)
    return {"compile_s": round(time.perf_counter() - start, 1)}


class _OrtModule(nn.Module):
    """A module run by an ONNX Runtime session (the fallback module for an empty batch)."""

    def __init__(self, session, fallback: nn.Module, names: list[str] | None) -> None:
        super().__init__()
        self.session, self.fallback, self.names = session, fallback, names
        self.input = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor):
        if x.shape[0] == 0:
            return self.fallback(x)
        outputs = [torch.from_numpy(o) for o in self.session.run(None, {self.input: x.contiguous().numpy()})]
        if self.names is None:
            return outputs[0]
        return collections.OrderedDict(zip(self.names, outputs, strict=True))


def _ort_module(module: nn.Module, example: torch.Tensor, dynamic: dict, threads: int, names: list[str] | None):
    import onnxruntime

    class Tupled(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            return tuple(y.values()) if isinstance(y, dict) else y

    buffer = io.BytesIO()
    outputs = [f"out{i}" for i in range(len(names))] if names else ["out0"]
    torch.onnx.export(Tupled(module).eval(), (example,), buffer, dynamo=False, input_names=["x"], output_names=outputs,
                      dynamic_axes={"x": dynamic}, opset_version=17)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # its threads spin between runs like OpenMP's: follow OMP_WAIT_POLICY as torch's threads do
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if passive else "1")
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return _OrtModule(session, module, names)


def apply_onnxruntime(pipeline: Pipeline, frames: list) -> dict:
    """ONNX Runtime (CPU execution provider, all graph optimisations) for network 1's backbone +
    FPN, box head, mask head and the stage's MobileNetV2 features, each exported with
    torch.onnx (TorchScript exporter, opset 17) with dynamic spatial / batch axes."""
    import warnings

    import onnxruntime

    threads = torch.get_num_threads()
    model = pipeline.model
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        rgb, _ = frames[0]
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0)
        tensors = model.transform([image])[0].tensors
        features = model.backbone(tensors)
        model.backbone = _ort_module(model.backbone, tensors, {2: "height", 3: "width"}, threads, list(features))
        heads = model.roi_heads
        pooled = torch.rand(2, *heads.box_roi_pool(features, [torch.tensor([[0, 0, 32.0, 32.0]] * 2)],
                                                   [tuple(tensors.shape[-2:])]).shape[1:])
        heads.box_head = _ort_module(heads.box_head, pooled, {0: "rois"}, threads, None)
        if heads.mask_head is not None:
            mask_pooled = torch.rand(2, *heads.mask_roi_pool(features, [torch.tensor([[0, 0, 32.0, 32.0]] * 2)],
                                                             [tuple(tensors.shape[-2:])]).shape[1:])
            both = nn.Sequential(heads.mask_head, heads.mask_predictor)
            heads.mask_head, heads.mask_predictor = _ort_module(both, mask_pooled, {0: "rois"}, threads, None), nn.Identity()
        if pipeline.viewpoint_stage is not None:
            stage = pipeline.viewpoint_stage.model
            size = stage.config.crop_size
            stage.features = _ort_module(stage.features, torch.rand(2, 3, size, size), {0: "crops"}, threads, None)
    return {"onnxruntime": onnxruntime.__version__, "export_s": round(time.perf_counter() - start, 1)}


VARIANTS: dict[str, Callable[..., dict]] = {
    "baseline": lambda pipeline: {},
    "channels_last": apply_channels_last,
    "fold_bn": apply_fold_bn,
    "fast_path": apply_fast_path,
    "int8_heads": apply_int8_heads,
    "compile": apply_compile,
    "onnxruntime": apply_onnxruntime,
}
"""name -> technique applied to a freshly built ``Pipeline(fast_path=False)`` (those taking
``frames`` compile or export on them). ``fast_path`` is what ``Pipeline`` applies by default."""
NEEDS_FRAMES = ("compile", "onnxruntime")
QUICK_VARIANTS = "baseline,channels_last,fold_bn,fast_path,int8_heads"


def parse_variants(names: str) -> list[str]:
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in VARIANTS]
    if unknown or not chosen:
        raise ValueError(f"--variants: names among {', '.join(VARIANTS)}, got {names!r}")
    if chosen[0] != "baseline":
        chosen = ["baseline", *[n for n in chosen if n != "baseline"]]
    return chosen


# =========================================================================== timing
class StageTimer:
    """Wall time of each call of network 1 and of the stage's network inside a pipeline (forward hooks)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.times: dict[str, list[float]] = {"network": [], "viewpoint": []}
        self._start: dict[str, float] = {}
        self._calls: dict[str, int] = {"network": 0, "viewpoint": 0}
        self._hook(pipeline.model, "network")
        if pipeline.viewpoint_stage is not None:
            self._hook(pipeline.viewpoint_stage.model, "viewpoint")

    def _hook(self, module: nn.Module, key: str) -> None:
        def pre(*_):
            self._start[key] = time.perf_counter()

        def post(*_):
            self._pending[key] += 1e3 * (time.perf_counter() - self._start[key])

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def begin(self) -> None:
        self._pending = {"network": 0.0, "viewpoint": 0.0}

    def end(self) -> None:
        for key, value in self._pending.items():
            self.times[key].append(value)


def time_variants(pipelines: dict[str, Pipeline], frames: list, reps: int) -> dict[str, dict]:
    """Interleaved timing (see the module doc): per variant, median and p90 ms per frame of the
    whole call, medians of network 1 and the stage, and the median CPU time of the process per
    call (all its threads: what the work costs, less exposed than wall time to other jobs taking
    the cores)."""
    timers = {name: StageTimer(p) for name, p in pipelines.items()}
    totals: dict[str, list[float]] = {name: [] for name in pipelines}
    cpu: dict[str, list[float]] = {name: [] for name in pipelines}
    for name, pipeline in pipelines.items():  # warm-up pass
        for rgb, intrinsics in frames:
            timers[name].begin()
            pipeline(rgb, intrinsics)
    for timer in timers.values():
        timer.times = {"network": [], "viewpoint": []}
    for _ in range(reps):
        for name, pipeline in pipelines.items():
            for rgb, intrinsics in frames:
                timers[name].begin()
                start, start_cpu = time.perf_counter(), time.process_time()
                pipeline(rgb, intrinsics)
                totals[name].append(1e3 * (time.perf_counter() - start))
                cpu[name].append(1e3 * (time.process_time() - start_cpu))
                timers[name].end()
    out = {}
    for name, times in totals.items():
        out[name] = {"calls": len(times), "median_ms": statistics.median(times),
                     "p90_ms": float(np.percentile(times, 90)), "cpu_ms": statistics.median(cpu[name]),
                     "network_ms": statistics.median(timers[name].times["network"]),
                     "viewpoint_ms": statistics.median(timers[name].times["viewpoint"])}
    return out


# =========================================================================== record
NOTES = (
    "Shipped: the `fast_path` row is what `Pipeline` does by default on CPU (`fast_path=True`, "
    "scene3d_ros/model/fast_path.py: batch norms folded into the convolutions, network 1 channels-last); "
    "`Pipeline(fast_path=False)` is the baseline; `fold_bn` and `channels_last` are its two halves alone. "
    "Recorded, not shipped: ONNX Runtime (two optional packages, onnxruntime and onnx, and a graph export at "
    "every start), `torch.compile` (its compile time at every start, and a recompile when the detection count "
    "first changes), dynamic int8 of the heads' Linear layers (not exact: see its row).",
    "",
    "Not run as variants: static int8 (torch 2.14's eager/FX static quantisation is deprecated in favour of "
    "torchao's pt2e flow, which the project does not install; dynamic int8 of the Linear heads alone already "
    "changes outputs); OpenVINO (ONNX Runtime stands for the exported-graph route). RoIAlign (torchvision's "
    "CPU kernel, single-threaded; FLOP-free to the counter) takes about 25 ms of a 1-thread 640x480 frame for the "
    "box head's 150 proposals: a probe rewrote it as two matrix products (exact to 5e-7), 1.7x faster at 1 "
    "thread and no faster at 2 on the loaded machine, so it was not pursued.",
)
"""The fixed notes at the end of the record: what is shipped, and what was tried outside the variants."""

def markdown(record: dict) -> str:
    m, f = record["machine"], record["flops"]
    fit = f["fit"]
    lines = ["# CPU inference path: FLOPs, matmul peak, achieved GFLOP/s and the A/B of CPU techniques", ""]
    if record.get("provisional"):
        lines += [f"**{record['provisional']}**", ""]
    lines += [
        f"Machine: {m['nproc']} cores, {m['cpu']}; torch {record['torch']}, intra-op threads: {record['threads']}, "
        f"OMP_WAIT_POLICY={record['omp_wait_policy'] or 'unset'}. Command: `{record['command']}` ({record['date']}). "
        f"Load average (1/5/15 min) before: {record['load_before']}, after: {record['load_after']}; cores busy "
        f"before: {record['cores_busy_before']:.0%}.",
        f"Model: {record['checkpoint']}; crop viewpoint stage: {record['viewpoint_checkpoint']}; score threshold "
        f"{record['score_threshold']}, max detections {record['max_detections']}. {record['frames']} rendered "
        f"{record['size']} scenes of {record['objects']} objects (seed 7), mean {f['mean_detections']:.1f} "
        f"detections per frame; {record['reps']} interleaved rounds after a warm-up pass.", "",
        "## FLOPs per frame (torch.utils.flop_counter)", "",
        "| family | GFLOP per frame (mean) | share |", "|---|---|---|"]
    total = f["mean_total_gflop"]
    for family, gflop in f["mean_families"].items():
        lines.append(f"| {family}{' (runs per object)' if family in PER_OBJECT_FAMILIES else ''} | {gflop:.3f} | "
                     f"{gflop / total:.0%} |")
    lines += [f"| other (not in a family) | {f['mean_other_gflop']:.3f} | {f['mean_other_gflop'] / total:.0%} |",
              f"| **whole call** | **{total:.2f}** | |", "",
              f"Fit: GFLOP per frame = {fit['fixed_gflop']:.2f} + N x {fit['per_object_gflop']:.3f} (N detections; per "
              f"object: mask head {fit['per_object']['mask_head']:.3f}, pose + descriptor heads "
              f"{fit['per_object']['pose_descriptor_heads']:.3f}, crop viewpoint stage "
              f"{fit['per_object']['viewpoint_stage']:.3f}); with 5 objects "
              f"{fit['fixed_gflop'] + 5 * fit['per_object_gflop']:.2f} GFLOP. Network 1 alone: "
              f"{f['mean_network_gflop']:.2f} GFLOP per frame.", "",
              "## Matmul peak and achieved GFLOP/s", ""]
    for peak in record["matmul_peak"]:
        lines.append(f"- fp32 matmul {peak['size']}x{peak['size']}, {peak['threads']} thread(s): "
                     f"{peak['median_gflops']:.0f} GFLOP/s (median), {peak['best_gflops']:.0f} (best call)")
    base = record["variants"]["baseline"]["timing"]
    peak = record["matmul_peak"][0]["median_gflops"]
    achieved = record["achieved"]
    lines += [f"- achieved by today's path (the baseline, intra-op threads: {record['threads']}): whole call {achieved['whole_gflops']:.1f} "
              f"GFLOP/s ({achieved['whole_gflops'] / peak:.0%} of the matmul peak) in {base['median_ms']:.1f} ms; "
              f"network 1 {achieved['network_gflops']:.1f} GFLOP/s in {base['network_ms']:.1f} ms; the stage "
              f"{achieved['viewpoint_gflops']:.1f} GFLOP/s in {base['viewpoint_ms']:.1f} ms", "",
              "## A/B on the whole pipeline", "",
              "| variant | median / p90 ms per frame | network 1 ms | stage ms | speed-up | CPU ms per frame (speed-up) | "
              "GFLOP/s (whole call) | same outputs | worst rotation change (deg): published / network 1 | min box IoU | "
              "max score change | notes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in record["variants"].items():
        if "error" in v:
            lines.append(f"| {name} | - | - | - | - | - | - | - | - | - | - | not run: {v['error']} |")
            continue
        t, s = v["timing"], v["outputs"]
        same = "yes" if s["same"] else f"**no**: {s['reason']}"
        notes = ", ".join(f"{k} {val}" for k, val in v["info"].items()) or ""
        lines.append(f"| {name} | {t['median_ms']:.1f} / {t['p90_ms']:.1f} | {t['network_ms']:.1f} | "
                     f"{t['viewpoint_ms']:.1f} | {v['speedup']:.2f}x | {t['cpu_ms']:.1f} ({base['cpu_ms'] / t['cpu_ms']:.2f}x) | "
                     f"{total / (t['median_ms'] / 1e3):.1f} | {same} | {s['max_rotation_deg']:.3f} / "
                     f"{s['max_network_rotation_deg']:.3f} | {s['min_box_iou']:.4f} | {s['max_score_diff']:.4f} | "
                     f"{notes} |")
    kept = [n for n, v in record["variants"].items() if v.get("kept")]
    lines += ["", f"Meeting the bar (>= {KEEP_SPEEDUP}x on the whole pipeline with the same outputs: the same detections, "
              f"box IoU >= {BOX_IOU_TOLERANCE}, scores within {SCORE_TOLERANCE}, rotations within "
              f"{ROTATION_TOLERANCE_DEG} deg): {', '.join(kept) if kept else 'none'}.", "", *NOTES, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=None, help=f"comma-separated, among {', '.join(VARIANTS)} "
                        "(default: all; baseline always runs first)")
    parser.add_argument("--frames", type=int, default=None, help="rendered scenes (default 6)")
    parser.add_argument("--objects", type=int, default=5, help="objects per rendered scene")
    parser.add_argument("--reps", type=int, default=None, help="interleaved timing rounds (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--size", default=None, help="image size WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="network 1 (default: the shipped model)")
    parser.add_argument("--viewpoint-checkpoint", default=None,
                        help="crop viewpoint stage (default: Pipeline's; '' for network 1 alone)")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="default: perception_node's (config/perception.yaml)")
    parser.add_argument("--matmul-size", type=int, default=None, help="square matrix size of the peak (default 2048)")
    parser.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for idle cores first")
    parser.add_argument("--name", default="cpu_path", help="results file stem under benchmarks/results")
    parser.add_argument("--provisional", default=None, help="a note printed at the top of the record")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 frame at 160x120, 1 round, 256 matmul, "
                        f"variants {QUICK_VARIANTS} unless given")
    args = parser.parse_args(argv)
    quick = args.quick
    frames_n = args.frames or (1 if quick else 6)
    reps = args.reps or (1 if quick else 3)
    size = args.size or ("160x120" if quick else "640x480")
    matmul_size = args.matmul_size or (256 if quick else 2048)
    try:
        variants = parse_variants(args.variants or (QUICK_VARIANTS if quick else ",".join(VARIANTS)))
    except ValueError as exc:
        parser.error(str(exc))
    width, height = (int(v) for v in size.lower().split("x"))
    torch.set_num_threads(args.threads)
    params = load_yaml(config_dir() / "perception.yaml")["/**"]["ros__parameters"]
    score_threshold = float(params["score_threshold"]) if args.score_threshold is None else args.score_threshold
    checkpoint = args.checkpoint or default_model_path()

    def build() -> Pipeline:
        return Pipeline(checkpoint, "cpu", score_threshold, max_detections=int(params["max_detections"]),
                        input_size=int(params["input_size"]) or None, num_threads=args.threads,
                        viewpoint_checkpoint=args.viewpoint_checkpoint, fast_path=False)

    print(f"rendering {frames_n} frames at {size} ...", flush=True)
    frames = render_scenes(frames_n, width, height, args.objects)
    baseline = build()
    record: dict = {"command": command_line("bench_cpu_path.py", argv), "machine": machine(), "torch": torch.__version__,
                    "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "checkpoint": report_path(checkpoint),
                    "viewpoint_checkpoint": (report_path(args.viewpoint_checkpoint or default_viewpoint_model_path())
                                             if baseline.viewpoint_stage is not None else "none"),
                    "score_threshold": score_threshold, "max_detections": int(params["max_detections"]),
                    "size": size, "frames": frames_n, "objects": args.objects, "reps": reps,
                    "provisional": args.provisional}
    record["cores_busy_before"] = round(wait_until_quiet(0.15, args.max_wait), 2)
    record["load_before"] = load_average()
    record["date"] = time.strftime("%Y-%m-%d %H:%M:%S")

    print("counting FLOPs ...", flush=True)
    flops = count_flops(baseline, frames)
    fit = fit_per_object(flops)
    record["flops"] = {
        "frames": flops, "fit": fit, "mean_detections": statistics.fmean(f["detections"] for f in flops),
        "mean_total_gflop": statistics.fmean(f["total_gflop"] for f in flops),
        "mean_network_gflop": statistics.fmean(f["network_gflop"] for f in flops),
        "mean_other_gflop": statistics.fmean(f["other_gflop"] for f in flops),
        "mean_families": {k: statistics.fmean(f["families"][k] for f in flops) for k in FAMILIES}}
    print("matmul peak ...", flush=True)
    record["matmul_peak"] = [matmul_peak(matmul_size, args.threads)]
    if args.threads != 1:
        record["matmul_peak"].append(matmul_peak(matmul_size, 1))

    reference = [baseline(rgb, intrinsics) for rgb, intrinsics in frames]
    pipelines: dict[str, Pipeline] = {"baseline": baseline}
    record["variants"] = {"baseline": {"info": {}}}
    for name in variants[1:]:
        print(f"variant {name} ...", flush=True)
        try:
            pipeline = build()
            apply = VARIANTS[name]
            info = apply(pipeline, frames) if name in NEEDS_FRAMES else apply(pipeline)
            outputs = [pipeline(rgb, intrinsics) for rgb, intrinsics in frames]
        except Exception as exc:  # recorded, not fatal: a missing package, a compiler error
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
            print(f"  {name} failed: {reason}\n{traceback.format_exc(limit=3)}", flush=True)
            record["variants"][name] = {"error": reason}
            continue
        pipelines[name] = pipeline
        record["variants"][name] = {"info": info, "outputs": compare_outputs(reference, outputs)}
        print(f"  {json.dumps(record['variants'][name])}", flush=True)
    record["variants"]["baseline"]["outputs"] = compare_outputs(reference, reference)

    print(f"timing {len(pipelines)} variants x {reps} rounds x {frames_n} frames ...", flush=True)
    timing = time_variants(pipelines, frames, reps)
    record["load_after"] = load_average()
    base = timing["baseline"]
    for name, t in timing.items():
        v = record["variants"][name]
        v["timing"] = t
        v["speedup"] = base["median_ms"] / t["median_ms"]
        v["kept"] = name != "baseline" and v["outputs"]["same"] and v["speedup"] >= KEEP_SPEEDUP
        print(f'  {{"variant": "{name}", "median_ms": {t["median_ms"]:.1f}, "speedup": {v["speedup"]:.2f}, '
              f'"same": {str(v["outputs"]["same"]).lower()}}}', flush=True)
    mean = record["flops"]
    viewpoint_gflop = mean["mean_families"]["viewpoint_stage"]
    record["achieved"] = {
        "whole_gflops": mean["mean_total_gflop"] / (base["median_ms"] / 1e3),
        "network_gflops": mean["mean_network_gflop"] / (base["network_ms"] / 1e3),
        "viewpoint_gflops": viewpoint_gflop / (base["viewpoint_ms"] / 1e3) if base["viewpoint_ms"] > 0 else 0.0}
    text = markdown(record)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(record, indent=1, default=str) + "\n")
        atomic_write_text(RESULTS / f"{args.name}.md", text)
        print(f"wrote {RESULTS / args.name}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
