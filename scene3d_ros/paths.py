"""Where scene3d_ros keeps files: package config, and the data directory for built artefacts.

The data directory holds what `make setup` / the build commands produce (the CAD library, shape
databases, generated datasets). It is ``$SCENE3D_DATA_DIR`` when set, else
``$XDG_DATA_HOME/scene3d_ros`` (default ``~/.local/share/scene3d_ros``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE_NAME = "scene3d_ros"
PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir() -> Path:
    """Root folder for built artefacts (created on demand by the writers, not here)."""
    env = os.environ.get("SCENE3D_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / PACKAGE_NAME


def default_cad_library_dir() -> Path:
    """The CAD library built by ``build_cad_library`` (and ``make setup``)."""
    return data_dir() / "cad_library"


def _share_subdir(name: str) -> Path:
    """``name``/ of the source tree when running from it, else of the installed share/ folder."""
    source_tree = PACKAGE_DIR.parent
    if (source_tree / "package.xml").is_file() and (source_tree / "setup.py").is_file():
        return source_tree / name  # running from the source tree (editable install, tests)
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE_NAME)) / name
    except Exception as exc:  # ament index missing or package not installed
        raise FileNotFoundError(
            f"cannot find the {PACKAGE_NAME} {name}/ folder next to {PACKAGE_DIR} nor in the ament index"
        ) from exc


def config_dir() -> Path:
    """The package's config/ folder (YAML configs, the Fast DDS profile)."""
    return _share_subdir("config")


def packaged_config_file(name: str) -> Path | None:
    """``config/<name>`` of the package when it exists (the default ``--config`` of the entry
    points), else None."""
    try:
        path = config_dir() / name
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


DEFAULT_MODEL_FILE = "scene3d_default.pt"


def default_model_path() -> Path:
    """The shipped default network (models/scene3d_default.pt; see models/MODEL_CARD.md)."""
    return _share_subdir("models") / DEFAULT_MODEL_FILE


DEFAULT_VIEWPOINT_MODEL_FILE = "viewpoint_default.pt"


def default_viewpoint_model_path() -> Path:
    """The shipped crop viewpoint stage (models/viewpoint_default.pt), when one is shipped."""
    return _share_subdir("models") / DEFAULT_VIEWPOINT_MODEL_FILE


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def report_path(path: str | Path) -> str:
    """``path`` as a report records it: relative to the working directory when it lies inside it
    (reports committed with the repository then name ``models/scene3d_default.pt``, not the
    folder of the machine that wrote them), else absolute."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic text write (UTF-8); see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
