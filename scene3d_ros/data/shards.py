"""Synthetic dataset shards: file format, deterministic generation, manifest and resume.

Layout of a dataset folder::

    manifest.json          config, seed, code version, CAD library checksum, shard list (sha256)
    shard-00000.npz        scenes 0 .. S-1
    shard-00001.npz        scenes S .. 2S-1 ...

A shard is a standard ``.npz`` (``np.load`` reads it) written by :func:`write_npz`: the same
container as ``np.savez_compressed`` but with fixed zip timestamps so that equal content gives
equal bytes (``np.savez*`` stamps the current time). Entries per scene ``j`` of the shard:

* ``scene{j:04d}_rgb``: uint8 bytes of an RGB PNG (H x W x 3);
* ``scene{j:04d}_instance``: uint8 bytes of a 16-bit grayscale PNG holding ``instance + 1``
  (0 = background, k + 1 = object k of the scene, matching ``instance_id`` in the JSON);
* ``scene{j:04d}_depth``: float16 (H, W) z-depth in **metres** along the optical axis, 0 on
  background (relative precision 2^-11, about 0.05 %; maximum 65504 m);
* ``scene{j:04d}_meta``: uint8 bytes of UTF-8 JSON: ``scene_index``, ``width``, ``height``,
  ``K`` (3x3, pixels), ``scene`` (the full scene description) and ``objects`` (the ground truth
  of :class:`scene3d_ros.world.annotations.ObjectAnnotation`, one dict per visible object).

Plus one ``shard`` entry (UTF-8 JSON): format version, shard index, first scene, scene count and
the dataset's config hash. PNG entries are stored, the others deflated.

Determinism: scene ``i`` is drawn from ``np.random.default_rng(np.random.SeedSequence([seed, i]))``,
so shard ``k`` is a pure function of (seed, k, config): results do not depend on the number of
worker processes, nor on which shards were generated before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import multiprocessing
import subprocess
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import scene3d_ros
from scene3d_ros.config import dataclass_to_dict
from scene3d_ros.paths import PACKAGE_DIR, atomic_write_bytes, atomic_write_text, data_dir
from scene3d_ros.world.scene_sampler import SceneConfig

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".generate_data.lock"
PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNG entries: level 1 is ~3x faster than the default 6 for ~10 % more bytes."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
LOGGER = logging.getLogger(__name__)


class DatasetMismatchError(RuntimeError):
    """An output folder already holds a dataset generated with another config, seed or library."""


class DatasetBusyError(RuntimeError):
    """Another process is generating into the same output folder."""


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class OutputConfig:
    """``output`` section: how many scenes, how they are split into shards, the seed, the number
    of worker processes (does not change the data) and the destination folder (None =
    ``<data_dir>/synthetic``)."""

    num_scenes: int = 1000
    scenes_per_shard: int = 50
    seed: int = 0
    workers: int = 2
    directory: str | None = None

    def __post_init__(self) -> None:
        if self.num_scenes < 1 or self.scenes_per_shard < 1:
            raise ValueError("num_scenes and scenes_per_shard must be >= 1")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if not 0 <= int(self.seed) < 2**63:
            raise ValueError("seed must be a non-negative integer")


@dataclass(frozen=True)
class GenerateConfig:
    """The whole ``generate_data`` config: ``scene``, ``output`` and the CAD library folder
    (None = the default library, built on first use)."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cad_library: str | None = None

    @property
    def num_shards(self) -> int:
        return -(-self.output.num_scenes // self.output.scenes_per_shard)


def default_output_dir() -> Path:
    return data_dir() / "synthetic"


def dataset_identity(config: GenerateConfig, library_checksum: str) -> dict[str, Any]:
    """Everything that determines the bytes of the shards (not the worker count or folder)."""
    return {
        "format_version": FORMAT_VERSION,
        "scene": dataclass_to_dict(config.scene),
        "num_scenes": config.output.num_scenes,
        "scenes_per_shard": config.output.scenes_per_shard,
        "seed": int(config.output.seed),
        "cad_library_checksum": library_checksum,
    }


def _hash_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def code_version() -> dict[str, str | None]:
    """Package version and the git commit of the source tree (None when unavailable)."""
    commit = None
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        if out.returncode == 0:
            commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": scene3d_ros.__version__, "git_commit": commit}


# --------------------------------------------------------------------------- codecs
def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) RGB or (H, W) gray image, or a uint16 (H, W) image."""
    image = np.ascontiguousarray(image)
    if image.dtype == np.uint16 and image.ndim == 2:
        pil = Image.fromarray(image)  # mode I;16
    elif image.dtype == np.uint8 and image.ndim in (2, 3):
        pil = Image.fromarray(image)
    else:
        raise ValueError(f"cannot encode {image.dtype} {image.shape} as PNG (uint8 HxW[x3] or uint16 HxW)")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_png(data: bytes | np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_png`: uint8 (H, W, 3)/(H, W) or uint16 (H, W)."""
    if isinstance(data, np.ndarray):
        data = data.tobytes()
    with Image.open(io.BytesIO(data)) as pil:
        if pil.mode in ("I;16", "I;16B", "I"):
            return np.asarray(pil, dtype=np.uint16)
        return np.asarray(pil)


def write_npz(entries: dict[str, np.ndarray], stored: Iterable[str] = ()) -> bytes:
    """Bytes of an ``.npz`` holding ``entries`` with fixed timestamps (deterministic).

    Entries named in ``stored`` are stored uncompressed (already compressed data), the others
    deflated, like ``np.savez_compressed``.
    """
    stored = set(stored)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, mode="w", allowZip64=True) as zf:
        for name, value in entries.items():
            array_buf = io.BytesIO()
            np.lib.format.write_array(array_buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, array_buf.getvalue())
    return buf.getvalue()


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def scene_entries(j: int, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """npz entries of scene ``j`` of a shard from a record with ``rgb`` (uint8 HxWx3),
    ``instance`` (int HxW, -1 background), ``depth`` (float HxW metres) and ``meta`` (dict)."""
    instance = np.asarray(record["instance"])
    if instance.min() < -1 or instance.max() >= 65535:
        raise ValueError("instance ids must lie in [-1, 65534]")
    prefix = f"scene{j:04d}_"
    return {
        prefix + "rgb": np.frombuffer(encode_png(np.asarray(record["rgb"], dtype=np.uint8)), dtype=np.uint8),
        prefix + "instance": np.frombuffer(encode_png((instance + 1).astype(np.uint16)), dtype=np.uint8),
        prefix + "depth": np.asarray(record["depth"], dtype=np.float16),
        prefix + "meta": _json_bytes(record["meta"]),
    }


SCENE_PARTS = ("rgb", "instance", "depth", "meta")


def read_scene(npz: Any, j: int, parts: tuple[str, ...] = SCENE_PARTS) -> dict[str, Any]:
    """Scene ``j`` of an open shard (``np.load`` result): ``rgb`` uint8 (H, W, 3), ``instance``
    int32 (H, W) (-1 background), ``depth`` float32 (H, W) metres (0 background), ``meta`` dict;
    only the ``parts`` asked for (each decoded part costs time)."""
    unknown = set(parts) - set(SCENE_PARTS)
    if unknown:
        raise ValueError(f"unknown scene parts {sorted(unknown)}, expected some of {SCENE_PARTS}")
    prefix = f"scene{j:04d}_"
    decoders = {
        "rgb": lambda: decode_png(npz[prefix + "rgb"]),
        "instance": lambda: decode_png(npz[prefix + "instance"]).astype(np.int32) - 1,
        "depth": lambda: np.asarray(npz[prefix + "depth"], dtype=np.float32),
        "meta": lambda: json.loads(npz[prefix + "meta"].tobytes().decode("utf-8")),
    }
    return {part: decoders[part]() for part in parts}


def read_shard_header(path: str | Path) -> dict[str, Any]:
    """The ``shard`` JSON entry of a shard file."""
    with zipfile.ZipFile(path) as zf, zf.open("shard.npy") as f:
        return json.loads(np.lib.format.read_array(f, allow_pickle=False).tobytes().decode("utf-8"))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


# --------------------------------------------------------------------------- generation
def scene_rng(seed: int, scene_index: int) -> np.random.Generator:
    """The random generator of scene ``scene_index`` of a dataset with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(scene_index)]))


def scene_record(annotated, scene_index: int) -> dict[str, Any]:
    """Record (see :func:`scene_entries`) of an :class:`~scene3d_ros.world.annotations.AnnotatedScene`."""
    intrinsics = annotated.scene.intrinsics
    return {
        "rgb": annotated.rendered.rgb,
        "instance": annotated.rendered.instance,
        "depth": annotated.rendered.depth,
        "meta": {
            "scene_index": int(scene_index),
            "width": intrinsics.width,
            "height": intrinsics.height,
            "K": intrinsics.matrix.tolist(),
            "scene": annotated.scene.to_dict(),
            "objects": [a.to_dict() for a in annotated.annotations],
        },
    }


def shard_scene_range(config: GenerateConfig, index: int) -> range:
    first = index * config.output.scenes_per_shard
    return range(first, min(first + config.output.scenes_per_shard, config.output.num_scenes))


def generate_shard(config: GenerateConfig, index: int, library, renderer, config_hash: str) -> bytes:
    """Bytes of shard ``index``: a pure function of (config, index, library)."""
    from scene3d_ros.world.annotations import generate_annotated_scene

    scenes = shard_scene_range(config, index)
    entries: dict[str, np.ndarray] = {}
    for j, i in enumerate(scenes):
        rng = scene_rng(config.output.seed, i)
        annotated = generate_annotated_scene(rng, library, config.scene, renderer)
        entries.update(scene_entries(j, scene_record(annotated, i)))
    entries["shard"] = _json_bytes({
        "format_version": FORMAT_VERSION, "index": index, "first_scene": scenes.start,
        "num_scenes": len(scenes), "config_hash": config_hash,
    })
    stored = [name for name in entries if name.endswith(("_rgb", "_instance"))]
    return write_npz(entries, stored=stored)


# worker-process state (set by _init_worker)
_WORKER: dict[str, Any] = {}


def _init_worker(config: GenerateConfig, output: str, config_hash: str, library_root: str,
                 library_checksum: str, nthreads: int, library=None) -> None:
    from scene3d_ros.world.cad_library import CadLibrary
    from scene3d_ros.world.renderer import Renderer

    library = library if library is not None else CadLibrary.load(library_root)
    if library.checksum != library_checksum:
        raise RuntimeError("the CAD library changed while generating the dataset")
    _WORKER.update(config=config, output=Path(output), config_hash=config_hash, library=library,
                   renderer=Renderer(nthreads=nthreads))


def _generate_shard_job(index: int) -> dict[str, Any]:
    w = _WORKER
    data = generate_shard(w["config"], index, w["library"], w["renderer"], w["config_hash"])
    path = w["output"] / shard_name(index)
    atomic_write_bytes(path, data)
    return {"file": path.name, "index": index, "first_scene": shard_scene_range(w["config"], index).start,
            "num_scenes": len(shard_scene_range(w["config"], index)),
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


# --------------------------------------------------------------------------- manifest / resume
def read_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST_NAME
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    manifest = dict(manifest, shards=sorted(manifest["shards"], key=lambda s: s["index"]))
    atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _remove_stale_temporaries(root: Path) -> None:
    """Delete leftovers of interrupted atomic writes (``.<name>.<random>.tmp``)."""
    for tmp in root.glob(".*.tmp"):
        if tmp.name.startswith((".shard-", f".{MANIFEST_NAME}.")):
            tmp.unlink(missing_ok=True)


def _valid_existing_shard(path: Path, index: int, expected_scenes: int, config_hash: str) -> bool:
    """A shard file not (or wrongly) listed in the manifest is adopted only when its header
    matches and every zip CRC checks."""
    try:
        header = read_shard_header(path)
        with zipfile.ZipFile(path) as zf:
            if zf.testzip() is not None:
                return False
    except Exception:  # unreadable, truncated, not a zip: regenerate
        return False
    return (header.get("format_version") == FORMAT_VERSION and header.get("index") == index
            and header.get("num_scenes") == expected_scenes and header.get("config_hash") == config_hash)


@dataclass
class GenerationSummary:
    """What :func:`generate_dataset` did: shards generated now vs kept from an earlier run."""

    output: Path
    generated: list[int]
    kept: list[int]
    manifest: dict[str, Any]


def generate_dataset(config: GenerateConfig, output: str | Path | None = None, workers: int | None = None,
                     force: bool = False, progress: Callable[[int], None] | None = None,
                     mp_context: str = "forkserver") -> GenerationSummary:
    """Generate (or complete) the dataset of ``config`` in ``output``.

    Existing shards listed in the manifest with a matching sha256 are kept; shard files that
    are unlisted but valid (a run killed between writing a shard and the manifest) are adopted;
    anything else is regenerated. An existing manifest with a different config, seed, format or
    CAD library raises :class:`DatasetMismatchError` unless ``force`` (then the old shards are
    deleted first). ``progress(n)`` is called with the number of scenes of each finished shard
    (and once with the kept scenes). ``workers`` (default ``config.output.workers``) > 1 uses a
    process pool of that ``mp_context``: "forkserver" (default) forks the workers from a fresh
    single-threaded server that imported the rendering modules once; "spawn" starts each worker
    from scratch (both are safe with open3d's thread pools; "fork" is not offered).
    """
    if mp_context not in ("forkserver", "spawn"):
        raise ValueError(f"mp_context must be 'forkserver' or 'spawn', got {mp_context!r}")
    root = Path(output or config.output.directory or default_output_dir())
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root):
        return _generate(config, root, int(workers or config.output.workers), force, progress, mp_context)


@contextlib.contextmanager
def _exclusive(root: Path):
    """Hold an advisory lock on ``root`` so that two runs never write the same dataset."""
    with open(root / LOCK_NAME, "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DatasetBusyError(f"another generate_data run is writing {root}") from exc
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _generate(config: GenerateConfig, root: Path, workers: int, force: bool,
              progress: Callable[[int], None] | None, mp_context: str) -> GenerationSummary:
    from scene3d_ros.world.cad_library import ensure_cad_library

    library = ensure_cad_library(config.cad_library)
    identity = dataset_identity(config, library.checksum)
    config_hash = _hash_json(identity)
    version = code_version()

    _remove_stale_temporaries(root)
    listed: dict[int, dict[str, Any]] = {}
    mismatch = False
    manifest_path = root / MANIFEST_NAME
    if manifest_path.exists():
        try:
            old = read_manifest(root)
        except (OSError, ValueError) as exc:
            if not force:
                raise DatasetMismatchError(f"{manifest_path} is unreadable ({exc}); "
                                           "use --force to regenerate") from exc
            old = {}
        mismatch = old.get("config_hash") != config_hash
        if mismatch:
            if not force:
                diff = _differences(old.get("identity", {}), identity)
                raise DatasetMismatchError(
                    f"{root} already holds a dataset generated with a different configuration:\n  "
                    + "\n  ".join(diff or ["(manifest without a comparable identity)"])
                    + "\nUse another --output folder, or --force to delete it and regenerate."
                )
        else:
            listed = {int(s["index"]): s for s in old.get("shards", [])}
            if listed and old.get("code_version") != version:
                LOGGER.warning("resuming %s, generated by code version %s, with code version %s: the shards "
                               "may come from different code", root, old.get("code_version"), version)
    if force and mismatch:
        for stale in root.glob("shard-*.npz"):
            stale.unlink()
        manifest_path.unlink(missing_ok=True)

    manifest = {
        "generator": "scene3d_ros.data.shards.generate_dataset",
        "code_version": version,
        "identity": identity,
        "config_hash": config_hash,
        "config": {"scene": dataclass_to_dict(config.scene), "output": dataclass_to_dict(config.output),
                   "cad_library": config.cad_library},
        "seed": int(config.output.seed),
        "num_scenes": config.output.num_scenes,
        "num_shards": config.num_shards,
        "complete": False,
        "shards": [],
    }
    kept, pending = [], []
    for index in range(config.num_shards):
        path = root / shard_name(index)
        expected = len(shard_scene_range(config, index))
        entry = listed.get(index)
        if path.exists() and entry is not None and entry.get("sha256") == sha256_file(path):
            manifest["shards"].append(entry)
            kept.append(index)
        elif path.exists() and _valid_existing_shard(path, index, expected, config_hash):
            manifest["shards"].append({"file": path.name, "index": index,
                                       "first_scene": shard_scene_range(config, index).start,
                                       "num_scenes": expected, "sha256": sha256_file(path),
                                       "bytes": path.stat().st_size})
            kept.append(index)
        else:
            pending.append(index)
    _write_manifest(root, manifest)
    if progress is not None and kept:
        progress(sum(s["num_scenes"] for s in manifest["shards"]))

    generated = []

    def finished(info: dict[str, Any]) -> None:
        manifest["shards"].append(info)
        generated.append(info["index"])
        _write_manifest(root, manifest)
        if progress is not None:
            progress(info["num_scenes"])

    init_args = (config, str(root), config_hash, str(library.root), library.checksum)
    if pending and (workers == 1 or len(pending) == 1):
        _init_worker(*init_args, nthreads=0, library=library)
        for index in pending:
            finished(_generate_shard_job(index))
    elif pending:
        ctx = multiprocessing.get_context(mp_context)
        if mp_context == "forkserver":
            ctx.set_forkserver_preload(["scene3d_ros.data.shards", "scene3d_ros.world.annotations"])
        n_processes = min(workers, len(pending))
        with ctx.Pool(n_processes, initializer=_init_worker, initargs=init_args + (1,)) as pool:
            for info in pool.imap_unordered(_generate_shard_job, pending):
                finished(info)

    manifest["complete"] = True
    _write_manifest(root, manifest)
    return GenerationSummary(output=root, generated=sorted(generated), kept=kept, manifest=manifest)
