#!/usr/bin/env python3
"""How far the pose heads alone can go on the shipped model's frozen features (a CPU experiment).

    .venv/bin/python scripts/frozen_feature_heads.py extract --data DIR --images N --jitter J --output CACHE.pt
    .venv/bin/python scripts/frozen_feature_heads.py fit --train CACHE.pt [...] --val CACHE.pt
        [--head quaternion|anchors] [--epochs 4] [--lr 2e-4] [--dropout 0.3] [--weight-decay 0.05]

``extract`` runs the checkpoint's backbone + FPN once per image (at the inference size) and
stores, per ground-truth object, the box-ROI-pooled features ``(256, 7, 7)`` (fp16) of its
ground-truth box and of ``J`` jittered copies (IoU >= 0.55, as Mask R-CNN's positive
proposals), with the training targets of the pose and descriptor losses (allocentric quaternion,
encoded translation, symmetry, network 2's descriptors of the positive and negative depth views:
:class:`scene3d_ros.data.triplet_views.TripletViewDataset`). About 0.1 s per image on 2 cores.

``fit`` then trains the pose trunk and heads on the cache, thousands of times faster than
``train`` (no backbone, no rendering: ~12 s per epoch of 41k ROIs on 2 cores), and prints the
held-out rotation error (allocentric, symmetry-aware, ground-truth boxes; the mean over
categories of the per-category median and share below 30 deg) after every epoch:

* ``--head quaternion``: the shipped heads (trunk, rotation, translation and the descriptor
  head's own layer; the layers shared with network 2 stay frozen), fine-tuned with the training
  losses (L_pose with rotation weight 2 + the triplet loss);
* ``--head anchors``: the trunk plus a new rotation classifier over ``--anchors`` rotations drawn
  from the training targets (cross-entropy to the symmetry-aware nearest anchor; the prediction
  is the arg-max anchor): whether a classification output, which can keep several hypotheses,
  reads more out of the same features than quaternion regression.

``--box-geometry`` adds the box's aspect ratio to the trunk's inputs (:func:`box_shape`).

If neither beats the shipped heads on held-out data, the features (backbone + FPN) are what
limits the rotation, and only training those (GPU stages) can help. Nothing here is shipped.
"""

from __future__ import annotations

import argparse
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset
from torchvision.ops import box_iou
from tqdm import tqdm

from scene3d_ros.data.synthetic_dataset import SyntheticSceneDataset
from scene3d_ros.data.triplet_views import TripletViewDataset, collate_scenes
from scene3d_ros.evaluation import (
    ACC_ROTATION_THRESHOLD_DEG,
    mean_defined,
    median_or_none,
    rotation_errors_deg,
    share_below,
)
from scene3d_ros.geometry import SYMMETRIES
from scene3d_ros.model import build_model_from_checkpoint
from scene3d_ros.model.losses import rotation_loss, symmetry_codes, translation_loss, triplet_loss
from scene3d_ros.model.pose_heads import pose_targets, select_class_outputs
from scene3d_ros.model.rotations import canonicalize_quaternion, quaternion_multiply, symmetry_quaternions
from scene3d_ros.paths import atomic_write_bytes, default_cad_library_dir, default_model_path

MIN_JITTER_IOU = 0.55
JITTER_SIGMA = 0.1  # of the box width / height, per edge


def jittered_boxes(boxes: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """One jittered copy of each box ``(N, 4)`` (pixels, inside ``size`` = (h, w)); a copy below
    ``MIN_JITTER_IOU`` with its box, or degenerate, is replaced by the box itself."""
    h, w = size
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    out = boxes + torch.randn(boxes.shape, generator=generator) * JITTER_SIGMA * wh
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    ok = (box_iou(out, boxes).diagonal() >= MIN_JITTER_IOU) & ((out[:, 2:] - out[:, :2]) > 1).all(1)
    return torch.where(ok[:, None], out, boxes)


def extract(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    model = build_model_from_checkpoint(args.checkpoint)
    dataset = TripletViewDataset(SyntheticSceneDataset(args.data), default_cad_library_dir(),
                                 model.config.depth_encoder.view_size_px, seed=args.seed)
    count = min(args.images, len(dataset))
    loader = DataLoader(Subset(dataset, range(count)), batch_size=4, num_workers=1, collate_fn=collate_scenes)
    generator = torch.Generator().manual_seed(args.seed)
    keys = ("labels", "boxes", "q_allo", "t_enc", "symmetry", "positive", "negative")
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    features = []
    with torch.inference_mode():
        for images, targets in tqdm(loader, total=math.ceil(count / 4), desc="extract", mininterval=10):
            given = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            image_list, resized, cams = model.transform(images, given, [t["K"] for t in targets])
            feature_maps = model.backbone(image_list.tensors)
            rois = []
            for t, r, size, k in zip(targets, resized, image_list.image_sizes, cams, strict=True):
                gt = r["boxes"]
                boxes = torch.cat([gt] + [jittered_boxes(gt, size, generator) for _ in range(args.jitter)])
                of = torch.arange(gt.shape[0]).repeat(args.jitter + 1)  # ground-truth object of each ROI
                q_allo, t_enc = pose_targets(t["quaternions"][of], t["translations"][of], boxes, k)
                rows["labels"].append(t["labels"][of])
                rows["boxes"].append(boxes)
                rows["q_allo"].append(q_allo)
                rows["t_enc"].append(t_enc)
                rows["symmetry"].append(symmetry_codes(t["symmetries"], gt.shape[0])[of])
                rows["positive"].append(model.depth_encoder(t["positive_views"])[of].half())
                rows["negative"].append(model.depth_encoder(t["negative_views"])[of].half())
                rois.append(boxes)
            features.append(model.roi_heads.box_roi_pool(feature_maps, rois, image_list.image_sizes).half())
    cache = {k: torch.cat(v) for k, v in rows.items()}
    cache["features"] = torch.cat(features)
    buffer = io.BytesIO()
    torch.save(cache, buffer)
    atomic_write_bytes(args.output, buffer.getvalue())
    print(f"{count} images, {cache['features'].shape[0]} ROIs -> {args.output}")


def box_shape(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 3)``: ``a, a^2, |a|`` of the log aspect ratio ``a = log(w / h)`` of boxes ``(N, 4)``.
    ROI pooling resamples every box to 7 x 7, so the trunk never sees a box's shape, which says a
    lot about an object's azimuth (a car side-on is wide, head-on narrow)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp_min(1.0)
    a = torch.log(wh[:, 0] / wh[:, 1])
    return torch.stack((a, a * a, a.abs()), dim=1)


def load_caches(paths: list[Path]) -> dict[str, torch.Tensor]:
    parts = [torch.load(p, weights_only=True) for p in paths]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def rotation_summary(q_pred: torch.Tensor, cache: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Mean over categories of the median rotation error (deg) and of Acc_pi/6."""
    symmetries = [SYMMETRIES[c] for c in cache["symmetry"].tolist()]
    errors = rotation_errors_deg(q_pred.double().numpy(), cache["q_allo"].double().numpy(), symmetries)
    labels = cache["labels"].numpy()
    per_category = [errors[labels == c] for c in np.unique(labels)]
    return (mean_defined([median_or_none(e) for e in per_category]),
            mean_defined([share_below(e, ACC_ROTATION_THRESHOLD_DEG) for e in per_category]))


def anchor_distances(q: torch.Tensor, symmetry: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``(N, A)`` quaternion distance ``1 - |<anchor, q g>|`` minimised over each object's symmetry
    group ``g`` (the same groups as the rotation loss)."""
    out = torch.empty(q.shape[0], anchors.shape[0])
    for code, name in enumerate(SYMMETRIES):
        sel = torch.where(symmetry == code)[0]
        group = symmetry_quaternions(name)
        for chunk in sel.split(2048):
            candidates = canonicalize_quaternion(quaternion_multiply(q[chunk, None, :], group[None]))
            out[chunk] = 1.0 - (candidates @ anchors.T).abs().amax(dim=1)
    return out


def fit(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    model = build_model_from_checkpoint(args.checkpoint)
    heads = model.roi_heads
    train, val = load_caches(args.train), load_caches([args.val])
    n = train["features"].shape[0]
    num_classes = model.num_classes
    trunk = heads.pose_head
    layers = [type(m).__name__ for m in trunk]
    if layers != ["Flatten", "Linear", "ReLU", "Linear", "ReLU"]:
        raise SystemExit(f"fit expects the default pose trunk (two FC layers, no convs), this checkpoint has {layers}")
    print(f"{n} training ROIs, {val['features'].shape[0]} held-out ROIs; head {args.head}")

    if args.head == "quaternion":
        for p in heads.descriptor_head.tail.parameters():  # shared with network 2 (and the shape database)
            p.requires_grad_(False)
        modules = [trunk, heads.rotation_predictor, heads.translation_predictor, heads.descriptor_head]
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
    else:
        anchors = train["q_allo"][torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))[:args.anchors]]
        distances = anchor_distances(train["q_allo"], train["symmetry"], anchors)
        nearest = distances.argmin(dim=1)
        quantisation = torch.rad2deg(2 * torch.acos((1 - distances.min(dim=1).values).clamp(-1, 1)))
        print(f"{anchors.shape[0]} anchors; median distance of a training target to its anchor "
              f"{quantisation.median():.1f} deg")
        classifier = torch.nn.Linear(model.config.pose.trunk_fc_layers[-1], num_classes * anchors.shape[0])
        torch.nn.init.normal_(classifier.weight, std=0.01)
        torch.nn.init.zeros_(classifier.bias)
        modules = [trunk, classifier]
        params = [p for m in modules for p in m.parameters()]

    geometry = None
    if args.box_geometry:  # extra inputs of the trunk's first layer, zero-initialised (starts as the shipped trunk)
        geometry = torch.nn.Linear(3, trunk[1].out_features, bias=False)
        torch.nn.init.zeros_(geometry.weight)
        modules.append(geometry)
        params += list(geometry.parameters())

    def trunk_features(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        hidden = trunk[1](x.float().flatten(1))
        if geometry is not None:
            hidden = hidden + geometry(box_shape(boxes))
        return F.dropout(trunk[4](trunk[3](F.relu(hidden))), args.dropout, trunk.training)

    def unit_quaternions(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.normalize(select_class_outputs(heads.rotation_predictor(z), labels, 4), dim=-1)

    def anchor_logits(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return classifier(z).view(-1, num_classes, anchors.shape[0])[torch.arange(z.shape[0]), labels]

    def predict_rotation(x: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = trunk_features(x, boxes)
        if args.head == "quaternion":
            return unit_quaternions(z, labels)
        return anchors[anchor_logits(z, labels).argmax(dim=1)]

    def held_out() -> tuple[float, float]:
        for m in modules:
            m.eval()
        with torch.no_grad():
            q = torch.cat([predict_rotation(f, b, lab) for f, b, lab in
                           zip(val["features"].split(1024), val["boxes"].split(1024), val["labels"].split(1024),
                               strict=True)])
        for m in modules:
            m.train()
        return rotation_summary(q, val)

    if args.head == "quaternion":
        med, acc = held_out()
        print(f"before: held-out MedErr {med:.1f} deg, Acc_pi/6 {acc:.3f}")
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    batch = min(args.batch, n)
    steps_per_epoch = n // batch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps_per_epoch,
                                                    pct_start=0.1)
    start = time.monotonic()
    for epoch in range(args.epochs):
        order = torch.randperm(n)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch:(step + 1) * batch]
            x, labels = train["features"][idx], train["labels"][idx]
            z = trunk_features(x, train["boxes"][idx])
            if args.head == "quaternion":
                q = unit_quaternions(z, labels)
                t = select_class_outputs(heads.translation_predictor(z), labels, 3)
                loss = (2.0 * rotation_loss(q, train["q_allo"][idx], train["symmetry"][idx]).mean()
                        + 0.1 * translation_loss(t, train["t_enc"][idx]).mean()
                        + triplet_loss(heads.descriptor_head(z), train["positive"][idx].float(),
                                       train["negative"][idx].float()))
            else:
                loss = F.cross_entropy(anchor_logits(z, labels), nearest[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
        med, acc = held_out()
        print(f"epoch {epoch + 1}: training loss {total / steps_per_epoch:.3f}, held-out MedErr {med:.1f} deg, "
              f"Acc_pi/6 {acc:.3f} ({time.monotonic() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="cache ROI features and targets of a dataset split")
    ex.add_argument("--data", type=Path, required=True)
    ex.add_argument("--images", type=int, default=4000)
    ex.add_argument("--jitter", type=int, default=2, help="jittered copies of each ground-truth box")
    ex.add_argument("--output", type=Path, required=True)
    ft = sub.add_parser("fit", help="train pose heads on caches, report held-out rotation per epoch")
    ft.add_argument("--train", type=Path, nargs="+", required=True)
    ft.add_argument("--val", type=Path, required=True)
    ft.add_argument("--head", choices=("quaternion", "anchors"), default="quaternion")
    ft.add_argument("--anchors", type=int, default=1024)
    ft.add_argument("--box-geometry", action="store_true", help="also feed the box's aspect ratio to the trunk")
    ft.add_argument("--epochs", type=int, default=4)
    ft.add_argument("--batch", type=int, default=256, help="ROIs per step")
    ft.add_argument("--lr", type=float, default=2e-4)
    ft.add_argument("--dropout", type=float, default=0.3)
    ft.add_argument("--weight-decay", type=float, default=0.05)
    for p in (ex, ft):
        p.add_argument("--checkpoint", type=Path, default=default_model_path())
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    (extract if args.command == "extract" else fit)(args)


if __name__ == "__main__":
    main()
