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
matmul when many views are allowed), the FAISS backend searches an exact ``IndexFlatL2`` with
an ``IDSelectorBatch`` of the allowed views per query (distances to those views only; ranking
all views and filtering top-k candidates was ~75x slower at 100k views, the filter keeping
~0.75 % of them at 30 degrees).

**Candidates** (:func:`candidates_torch`, :meth:`ShapeDatabase.candidates`): the ``k`` allowed
views nearest in descriptor space, which :mod:`scene3d_ros.retrieval.resolution` (the resolution
policy) re-scores with each object's mask; :func:`search_torch` is ``k = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scene3d_ros.geometry import matrix_to_quaternion
from scene3d_ros.model.rotations import canonicalize_quaternion, quaternion_to_matrix

FALLBACK_CUBOID = "cuboid"
"""``RetrievalResult.fallback`` when no model fits: the caller builds a cuboid of the predicted size."""

_GATHER_BUDGET = 1 << 24
"""Max descriptor elements the torch backend gathers at once (sub-chunks bound the memory)."""
_GATHER_WEIGHT = 32
_DENSE_MIN_ROWS = 16
"""Torch backend cost rule: gather the allowed views (padded to k per query) when
``k * _GATHER_WEIGHT * rows <= max(rows, _DENSE_MIN_ROWS) * views``, else one masked matmul over all
views: a gathered element costs ~tens of multiply-adds of the matmul, and a matmul reads the whole
table even for one query (measured on 2 CPU cores at 100k views)."""
_DENSE_BUDGET = 1 << 24
"""Max (query x view) pairs one torch chunk holds (bounds memory: ~64 MiB per float32 matrix)."""


@dataclass(frozen=True)
class ViewCandidates:
    """The ``k`` allowed views nearest in descriptor distance for each of N queries
    (:meth:`ShapeDatabase.candidates`), ascending in distance.

    ``index`` (N, k) int64 rows into the database, -1 where fewer views were allowed;
    ``distance`` (N, k) float32 squared L2 descriptor distances, inf there; ``window_deg`` (N,)
    the pose window searched (degrees; wider than asked when no view lay within it; nan when the
    query's category has no view); ``angle_deg`` (N, k) geodesic angle (degrees) between each
    view and the query rotation (symmetry-aware for continuously symmetric models), nan where no view.
    """

    index: Tensor
    distance: Tensor
    window_deg: Tensor
    angle_deg: Tensor


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
    best distance exceeds ``max_distance``; else ``None``. ``rotation``: the chosen view's
    allocentric rotation (w, x, y, z), for continuously symmetric models turned about +z to the
    query's azimuth (``None`` when no view was chosen).
    """

    model_id: str | None
    category: str | None
    distance: float
    view_index: int
    view_angle_deg: float
    widened_to_deg: float | None = None
    fallback: str | None = None
    rotation: tuple[float, float, float, float] | None = None


def query_rotations(rotations: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """(canonical quaternions (N, 4), matrices (N, 3, 3)) float32 from (N, 4) (w, x, y, z)
    quaternions or (N, 3, 3) rotation matrices (allocentric)."""
    r = torch.as_tensor(np.asarray(rotations) if not isinstance(rotations, Tensor) else rotations)
    r = r.to(torch.float64)
    if r.dim() == 2 and r.shape[1] == 4:
        q = canonicalize_quaternion(r)
    elif r.dim() == 3 and r.shape[1:] == (3, 3):
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
    value means a smaller angle; ``angle_deg = 2 * degrees(acos(value))`` (values may exceed 1
    by rounding; :func:`angle_from_cos_half` clamps).
    """
    c = (query_q @ view_q.T).abs_()
    idx = torch.nonzero(view_continuous, as_tuple=True)[0]
    if len(idx):
        # trace(Rq^T Rv Rz(a)) = A cos a + B sin a + C, maximised over a: sqrt(A^2 + B^2) + C
        vr = view_r[idx]
        a = query_r[:, :, 0] @ vr[:, :, 0].T + query_r[:, :, 1] @ vr[:, :, 1].T
        b = query_r[:, :, 0] @ vr[:, :, 1].T - query_r[:, :, 1] @ vr[:, :, 0].T
        cc = query_r[:, :, 2] @ vr[:, :, 2].T
        trace = torch.sqrt(a * a + b * b) + cc
        c[:, idx] = torch.sqrt(((trace + 1.0) / 4.0).clamp(0.0, 1.0))
    return c


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
    (-1 or ``-inf`` = no allowed view at all: then ``nan``)."""
    steps = widening_steps(max_angle_deg)
    out = torch.full(best_cos_half.shape, float("nan"))
    for step in reversed(steps):
        ok = best_cos_half >= cos_half_threshold(step)
        out = torch.where(ok, torch.tensor(step), out)
    return out


def cos_half_threshold(angle_deg: float | Tensor) -> Tensor:
    """cos(angle/2) of the window edge, with a 1e-6 slack so views on the edge count."""
    angle = torch.as_tensor(angle_deg, dtype=torch.float32)
    return torch.cos(torch.deg2rad(angle) / 2.0) - 1e-6


def _chunk_size(num_views: int) -> int:
    return max(1, min(4096, _DENSE_BUDGET // max(num_views, 1)))


def _padded_ids(mask: Tensor, counts: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The allowed view ids of each row of ``mask`` (nc, V), padded to ``k`` per row (ids, valid)."""
    nc, device = mask.shape[0], mask.device
    q_idx, v_idx = torch.nonzero(mask, as_tuple=True)  # row-major: grouped by query, views ascending
    offsets = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(q_idx), device=device) - offsets[q_idx]
    ids = torch.zeros((nc, k), dtype=torch.long, device=device)
    valid = torch.zeros((nc, k), dtype=torch.bool, device=device)
    ids[q_idx, position] = v_idx
    valid[q_idx, position] = True
    return ids, valid


def _nearest_gathered(queries: Tensor, mask: Tensor, counts: Tensor, width: int, top: int, descriptors: Tensor,
                      sq_norms: Tensor) -> tuple[Tensor, Tensor]:
    """(squared distances, view indices) ``(nc, top)`` of the ``top`` nearest allowed views per
    query row, ascending, computing distances to the allowed views only: their ids padded to
    ``width`` (>= ``top``) per row, one gather and a batched matmul (sub-chunked to bound memory).
    Missing views get (inf, 0)."""
    nc, dim = queries.shape
    inf = torch.tensor(float("inf"), device=queries.device)
    dist = torch.full((nc, top), float("inf"), device=queries.device)
    views = torch.zeros((nc, top), dtype=torch.long, device=queries.device)
    ids, valid = _padded_ids(mask, counts, width)
    rows = max(1, _GATHER_BUDGET // (width * dim))
    for r0 in range(0, nc, rows):
        r1 = min(nc, r0 + rows)
        gathered = descriptors.index_select(0, ids[r0:r1].reshape(-1)).view(r1 - r0, width, dim)
        qd = queries[r0:r1]
        dots = torch.bmm(gathered, qd[:, :, None]).squeeze(-1)
        d = ((qd * qd).sum(1, keepdim=True) - 2.0 * dots + sq_norms[ids[r0:r1]]).clamp_min(0.0)
        dist[r0:r1], position = torch.topk(torch.where(valid[r0:r1], d, inf), top, dim=1, largest=False)
        views[r0:r1] = ids[r0:r1].gather(1, position)
    return dist, views


def _allowed_views(query_q: Tensor, query_r: Tensor, query_cat: Tensor, max_angle_deg: float, view_q: Tensor,
                   view_r: Tensor, view_continuous: Tensor, view_cat: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The pose window and category filter for a chunk of queries: (cos(angle/2) ``(n, V)``, -1
    for views of another category; allowed ``(n, V)`` bool; allowed count ``(n,)``; window used
    ``(n,)`` degrees, widened per query when its first window holds no view, nan when none can)."""
    device = view_q.device
    v = view_q.shape[0]
    c = cos_half_angles(query_q, query_r, view_q, view_r, view_continuous)  # in [0, 1]
    if not bool((query_cat == -1).all()):
        cat_ok = (query_cat[:, None] == -1) | (view_cat[None, :] == query_cat[:, None])
        c.masked_fill_(~cat_ok, -1.0)  # never within any window
    nc = c.shape[0]
    mask = c >= cos_half_threshold(min(float(max_angle_deg), 180.0)).to(device)
    counts = mask.sum(dim=1)
    win = torch.full((nc,), min(float(max_angle_deg), 180.0), device=device)
    empty = torch.nonzero(counts == 0).flatten()
    if len(empty):  # widen the window of the queries without a view in it
        best_c = c[empty].amax(dim=1) if v else torch.full((len(empty),), -1.0, device=device)
        win[empty] = effective_angles(best_c.cpu(), max_angle_deg).to(device)
        mask[empty] = c[empty] >= cos_half_threshold(win[empty].cpu()).to(device)[:, None]
        counts[empty] = mask[empty].sum(dim=1)
    return c, mask, counts, win


def search_torch(queries: Tensor, query_q: Tensor, query_r: Tensor, query_cat: Tensor, max_angle_deg: float,
                 descriptors: Tensor, sq_norms: Tensor, view_q: Tensor, view_r: Tensor,
                 view_continuous: Tensor, view_cat: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Exact pose-prior search, all tensors on one device (float32; ``descriptors`` (V, D),
    ``sq_norms`` (V,) their squared norms). Returns per query (view index (-1 = none), squared L2
    distance (inf = none), window used (degrees, nan = none), cos(angle/2) to the chosen view)."""
    index, dist, window, cos_half = candidates_torch(queries, query_q, query_r, query_cat, max_angle_deg, 1,
                                                     descriptors, sq_norms, view_q, view_r, view_continuous, view_cat)
    return index[:, 0], dist[:, 0], window, cos_half[:, 0]


def candidates_torch(queries: Tensor, query_q: Tensor, query_r: Tensor, query_cat: Tensor, max_angle_deg: float,
                     k: int, descriptors: Tensor, sq_norms: Tensor, view_q: Tensor, view_r: Tensor,
                     view_continuous: Tensor, view_cat: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``k`` allowed views nearest in descriptor distance per query (:func:`search_torch` is
    ``k = 1``). Per chunk of queries: the pose window and category filter, then distances to the
    allowed views only (gathered) when they are few, else one masked matmul over all views.
    Returns (view indices ``(N, k)``, -1 where fewer are allowed; squared distances ``(N, k)``
    ascending, inf there; window used ``(N,)`` degrees, nan = none; cos(angle/2) to each
    candidate ``(N, k)``, 0 where none)."""
    n, v = queries.shape[0], descriptors.shape[0]
    device = descriptors.device
    k = max(1, min(int(k), v)) if v else 1
    index = torch.full((n, k), -1, dtype=torch.long, device=device)
    dist = torch.full((n, k), float("inf"), device=device)
    window = torch.full((n,), float("nan"), device=device)
    cos_half = torch.zeros((n, k), device=device)
    if v == 0:
        return index, dist, window, cos_half
    step = _chunk_size(v)
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        c, mask, counts, win = _allowed_views(query_q[sl], query_r[sl], query_cat[sl], max_angle_deg, view_q,
                                              view_r, view_continuous, view_cat)
        qd = queries[sl]
        nc, allowed = qd.shape[0], int(counts.max())
        if allowed * _GATHER_WEIGHT * nc <= max(nc, _DENSE_MIN_ROWS) * v:  # few allowed views: gather them
            d, idx = _nearest_gathered(qd, mask, counts, max(allowed, k), k, descriptors, sq_norms)
        else:  # many: one masked matmul over all views
            full = ((qd * qd).sum(1, keepdim=True) - 2.0 * qd @ descriptors.T + sq_norms[None, :]).clamp_min(0.0)
            d, idx = torch.topk(torch.where(mask, full, torch.tensor(float("inf"), device=device)), k, dim=1,
                                largest=False)
        found = torch.isfinite(d)
        index[sl] = torch.where(found, idx, torch.full_like(idx, -1))
        dist[sl], window[sl] = d, win
        cos_half[sl] = torch.where(found, c.gather(1, idx), torch.zeros_like(d))
    return index, dist, window, cos_half


def align_azimuth(view_r: Tensor, query_r: Tensor) -> Tensor:
    """``view_r @ Rz(a)`` ``(N, 3, 3)`` with the turn ``a`` about the object's +z that brings each
    view rotation closest to its query rotation (both ``(N, 3, 3)``): the pose of a continuously
    symmetric model, whose database views have azimuth 0 only (see :func:`cos_half_angles`)."""
    a = (query_r[:, :, 0] * view_r[:, :, 0]).sum(1) + (query_r[:, :, 1] * view_r[:, :, 1]).sum(1)
    b = (query_r[:, :, 0] * view_r[:, :, 1]).sum(1) - (query_r[:, :, 1] * view_r[:, :, 0]).sum(1)
    angle = torch.atan2(b, a)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rz = torch.zeros(view_r.shape, dtype=view_r.dtype, device=view_r.device)
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = cos, -sin, sin, cos, 1.0
    return view_r @ rz


def search_faiss(index, queries: np.ndarray, allowed: list[np.ndarray], k: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest allowed view per query with a FAISS index over all views (e.g. ``IndexFlatL2``).

    ``queries`` (N, D) float32; ``allowed[i]``: the view ids query i may return (pose window and
    category already applied). Each query searches with an ``IDSelectorBatch`` of its ids, so
    FAISS computes distances to those views only. Returns (view index (-1 = none), squared L2
    distance (inf = none)), each ``(N,)``; with ``k``, the ``k`` nearest allowed views ``(N, k)``
    in ascending distance, padded with (-1, inf).
    """
    faiss = faiss_module()
    n = queries.shape[0]
    width = 1 if k is None else max(1, int(k))
    out_i = np.full((n, width), -1, dtype=np.int64)
    out_d = np.full((n, width), np.inf, dtype=np.float32)
    for i in range(n):
        ids = allowed[i]
        if len(ids) == 0:
            continue
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))
        dist, found = index.search(np.ascontiguousarray(queries[i:i + 1], dtype=np.float32), width, params=params)
        ok = found[0] >= 0
        out_i[i, ok], out_d[i, ok] = found[0, ok], np.maximum(dist[0, ok], 0.0)
    return (out_i[:, 0], out_d[:, 0]) if k is None else (out_i, out_d)


def faiss_module():
    """The ``faiss`` module, or ImportError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the FAISS backend needs faiss (pip install faiss-cpu); or use backend='torch'") from exc
    return faiss
