"""Pose-prior nearest-neighbour search over shape-database views (torch and FAISS backends).

Rotations are **allocentric** (object -> camera optical frame, relative to the viewing ray: what
a depth view shows), as (w, x, y, z) quaternions with ``w >= 0`` or 3x3 matrices. A query only
considers views whose rotation lies within ``max_angle_deg`` (geodesic angle, degrees) of the
query rotation and, when given, views of the query's category. For views of models with a
**continuous** symmetry about their up axis (+z) the database stores one azimuth only, so their
angle is the symmetric one: ``min over a of geodesic(R_query, R_view @ Rz(a))``.

Both backends share :func:`cos_half_angles` (the pose test) and :func:`effective_angles` (the
widening rule), so they differ only in how they find the nearest allowed descriptor: the torch
backend computes distances to the allowed views of each query (sparse gather, or one masked
matmul when many views are allowed), the FAISS backend ranks all views with an exact
``IndexFlatL2`` and takes the first candidate that passes the filter (k grows until one does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scene3d_ros.model.rotations import canonicalize_quaternion, quaternion_to_matrix

FALLBACK_CUBOID = "cuboid"
"""``RetrievalResult.fallback`` when no model fits: the caller builds a cuboid of the predicted size."""

_GATHER_BUDGET = 1 << 24
"""Max descriptor elements the torch backend gathers at once before switching to a masked matmul."""
_DENSE_BUDGET = 1 << 24
"""Max (query x view) pairs one torch chunk holds (bounds memory: ~64 MiB per float32 matrix)."""


@dataclass(frozen=True)
class RetrievalResult:
    """The retrieved CAD model for one query.

    ``model_id`` / ``category``: the model of the nearest allowed view (``None`` when ``fallback``
    is ``"cuboid"``). ``distance``: squared L2 distance between the query descriptor and that
    view's descriptor (``inf`` when no view was allowed). ``view_index``: row in the database
    (-1 when none). ``view_angle_deg``: geodesic angle (degrees) between the query rotation and
    the view's rotation (symmetry-aware for continuous models). ``widened_to_deg``: the pose
    window actually used when no view lay within ``max_angle_deg`` (``None`` when not widened).
    ``fallback``: ``"cuboid"`` when the query's category has no model in the database or the
    best distance exceeds ``max_distance``; else ``None``.
    """

    model_id: str | None
    category: str | None
    distance: float
    view_index: int
    view_angle_deg: float
    widened_to_deg: float | None = None
    fallback: str | None = None


def query_rotations(rotations: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """(canonical quaternions (N, 4), matrices (N, 3, 3)) float32 from (N, 4) (w, x, y, z)
    quaternions or (N, 3, 3) rotation matrices (allocentric)."""
    r = torch.as_tensor(np.asarray(rotations) if not isinstance(rotations, Tensor) else rotations)
    r = r.to(torch.float64)
    if r.dim() == 2 and r.shape[1] == 4:
        q = canonicalize_quaternion(r)
    elif r.dim() == 3 and r.shape[1:] == (3, 3):
        from scene3d_ros.geometry import matrix_to_quaternion

        q = torch.from_numpy(matrix_to_quaternion(r.cpu().numpy()))
    else:
        raise ValueError(f"rotations must be (N, 4) quaternions (w, x, y, z) or (N, 3, 3) matrices, "
                         f"got {tuple(r.shape)}")
    if not torch.isfinite(q).all():
        raise ValueError("rotations must be finite")
    return q.float(), quaternion_to_matrix(q).float()


def cos_half_angles(query_q: Tensor, query_r: Tensor, view_q: Tensor, view_r: Tensor,
                    view_continuous: Tensor) -> Tensor:
    """cos(angle / 2) ``(N, V)`` of the geodesic angle between each query and each view rotation.

    ``query_q`` (N, 4) / ``query_r`` (N, 3, 3): query quaternions and matrices; ``view_q`` (V, 4),
    ``view_r`` (V, 3, 3) likewise for the views; ``view_continuous`` (V,) bool: views of
    continuously symmetric models, whose angle is the minimum over rotations about +z. A larger
    value means a smaller angle; ``angle_deg = 2 * degrees(acos(value))``.
    """
    c = (query_q @ view_q.T).abs()
    idx = torch.nonzero(view_continuous, as_tuple=True)[0]
    if len(idx):
        # trace(Rq^T Rv Rz(a)) = A cos a + B sin a + C, maximised over a: sqrt(A^2 + B^2) + C
        vr = view_r[idx]
        a = query_r[:, :, 0] @ vr[:, :, 0].T + query_r[:, :, 1] @ vr[:, :, 1].T
        b = query_r[:, :, 0] @ vr[:, :, 1].T - query_r[:, :, 1] @ vr[:, :, 0].T
        cc = query_r[:, :, 2] @ vr[:, :, 2].T
        trace = torch.sqrt(a * a + b * b) + cc
        c[:, idx] = torch.sqrt(((trace + 1.0) / 4.0).clamp(0.0, 1.0))
    return c.clamp(max=1.0)


def angle_from_cos_half(c: Tensor | float) -> Tensor:
    """Geodesic angle in degrees from cos(angle / 2)."""
    return torch.rad2deg(2.0 * torch.acos(torch.as_tensor(c).clamp(-1.0, 1.0)))


def widening_steps(max_angle_deg: float) -> list[float]:
    """The pose windows tried in turn (degrees): max_angle, doubled until 180."""
    if not 0.0 < max_angle_deg:
        raise ValueError(f"max_angle_deg must be > 0 degrees, got {max_angle_deg}")
    steps = [min(float(max_angle_deg), 180.0)]
    while steps[-1] < 180.0:
        steps.append(min(steps[-1] * 2.0, 180.0))
    return steps


def effective_angles(best_cos_half: Tensor, max_angle_deg: float) -> Tensor:
    """Per query the pose window (degrees) to search: the first of :func:`widening_steps` that
    holds at least one allowed view, given the best (largest) cos(angle/2) over allowed views
    (``-inf`` = no allowed view at all; then ``nan``)."""
    steps = widening_steps(max_angle_deg)
    out = torch.full(best_cos_half.shape, float("nan"))
    for step in reversed(steps):
        ok = best_cos_half >= _cos_half_threshold(step)
        out = torch.where(ok, torch.tensor(step), out)
    return out


def _cos_half_threshold(angle_deg: float | Tensor) -> Tensor:
    """cos(angle/2) of the window edge, with a 1e-6 slack so views on the edge count."""
    angle = torch.as_tensor(angle_deg, dtype=torch.float32)
    return torch.cos(torch.deg2rad(angle) / 2.0) - 1e-6


def _chunk_size(num_views: int) -> int:
    return max(1, min(4096, _DENSE_BUDGET // max(num_views, 1)))


def allowed_mask(cos_half: Tensor, window_deg: Tensor, query_cat: Tensor, view_cat: Tensor) -> Tensor:
    """(N, V) bool: view within the query's window (degrees, (N,)) and of its category
    (``query_cat`` (N,) index into ``CATEGORIES``, -1 = any, -2 = none)."""
    mask = cos_half >= _cos_half_threshold(window_deg).to(cos_half.device)[:, None]
    cat_ok = (query_cat[:, None] == -1) | (view_cat[None, :] == query_cat[:, None])
    return mask & cat_ok


def search_torch(queries: Tensor, query_q: Tensor, query_r: Tensor, query_cat: Tensor, max_angle_deg: float,
                 descriptors: Tensor, sq_norms: Tensor, view_q: Tensor, view_r: Tensor,
                 view_continuous: Tensor, view_cat: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Exact pose-prior search, all tensors on one device (float32; ``descriptors`` (V, D),
    ``sq_norms`` (V,) their squared norms). Returns per query (view index (-1 = none), squared L2
    distance (inf = none), window used (degrees, nan = none), cos(angle/2) to the chosen view)."""
    n, v = queries.shape[0], descriptors.shape[0]
    device = descriptors.device
    index = torch.full((n,), -1, dtype=torch.long, device=device)
    dist = torch.full((n,), float("inf"), device=device)
    window = torch.full((n,), float("nan"), device=device)
    chosen_c = torch.zeros(n, device=device)
    step = _chunk_size(v)
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        c = cos_half_angles(query_q[sl], query_r[sl], view_q, view_r, view_continuous)
        cat_ok = (query_cat[sl, None] == -1) | (view_cat[None, :] == query_cat[sl, None])
        best_c = torch.where(cat_ok, c, torch.tensor(-float("inf"), device=device)).amax(dim=1) if v else \
            torch.full((c.shape[0],), -float("inf"), device=device)
        win = effective_angles(best_c.cpu(), max_angle_deg).to(device)
        mask = allowed_mask(c, win, query_cat[sl], view_cat) & ~torch.isnan(win)[:, None]
        q_idx, v_idx = torch.nonzero(mask, as_tuple=True)
        if len(q_idx) * descriptors.shape[1] <= _GATHER_BUDGET:
            diff = queries[sl][q_idx] - descriptors[v_idx]
            pair_d = (diff * diff).sum(dim=1)
            local = torch.full((c.shape[0],), float("inf"), device=device)
            local = local.scatter_reduce(0, q_idx, pair_d, reduce="amin")
            is_min = pair_d == local[q_idx]
            best_v = torch.full((c.shape[0],), v, dtype=torch.long, device=device)
            best_v = best_v.scatter_reduce(0, q_idx[is_min], v_idx[is_min], reduce="amin")
            found = best_v < v
            best_v = torch.where(found, best_v, torch.full_like(best_v, -1))
        else:  # many allowed views: one masked matmul
            qd = queries[sl]
            full = (qd * qd).sum(1, keepdim=True) - 2.0 * qd @ descriptors.T + sq_norms[None, :]
            full = torch.where(mask, full.clamp_min(0.0), torch.tensor(float("inf"), device=device))
            local, best_v = full.min(dim=1)
            found = torch.isfinite(local)
            best_v = torch.where(found, best_v, torch.full_like(best_v, -1))
        index[sl], dist[sl], window[sl] = best_v, torch.where(found, local, dist[sl]), win
        rows = torch.arange(c.shape[0], device=device)
        chosen_c[sl] = torch.where(found, c[rows, best_v.clamp_min(0)], chosen_c[sl])
    return index, dist, window, chosen_c


def search_faiss(index, queries: np.ndarray, windows: np.ndarray, cos_half_of, query_cat: np.ndarray,
                 view_cat: np.ndarray, initial_k: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Exact pose-prior search with a FAISS index over all views (``index``: e.g. ``IndexFlatL2``).

    ``windows`` (N,) degrees per query (nan = no allowed view), ``cos_half_of(i, ids)``: the
    cos(angle/2) of query i to views ``ids``. For each query the top-k candidates are checked
    against the pose window and category in distance order; k grows x4 until one passes.
    Returns (view index (-1 = none), squared L2 distance (inf = none)).
    """
    n = queries.shape[0]
    total = index.ntotal
    out_i = np.full(n, -1, dtype=np.int64)
    out_d = np.full(n, np.inf, dtype=np.float32)
    pending = np.nonzero(~np.isnan(windows))[0]
    k = min(max(1, initial_k), total)
    while len(pending) and k > 0:
        dists, ids = index.search(np.ascontiguousarray(queries[pending], dtype=np.float32), k)
        still = []
        for row, i in enumerate(pending):
            cand = ids[row]
            valid = cand >= 0
            cand_ids = cand[valid]
            ok = cos_half_of(i, cand_ids) >= float(_cos_half_threshold(float(windows[i])))
            if query_cat[i] != -1:
                ok &= view_cat[cand_ids] == query_cat[i]
            hits = np.nonzero(ok)[0]
            if len(hits):
                out_i[i], out_d[i] = cand_ids[hits[0]], max(float(dists[row][valid][hits[0]]), 0.0)
            elif k < total:
                still.append(i)
        pending = np.asarray(still, dtype=np.int64)
        k = min(k * 4, total) if len(pending) else 0
    return out_i, out_d


def faiss_module():
    """The ``faiss`` module, or ImportError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the FAISS backend needs faiss (pip install faiss-cpu); or use backend='torch'") from exc
    return faiss
