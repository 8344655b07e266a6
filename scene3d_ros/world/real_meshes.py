"""Real CAD meshes that ship inside pip packages (pybullet_data), brought into the canonical frame.

Each model is assembled from its URDF: every ``<visual>`` of every link (meshes with their
``scale``, boxes, cylinders, spheres), placed by the visual origins and the joint origins with
all joints at their zero position. A fixed, documented rotation then turns the URDF base frame
into the canonical object frame (+x front, +y left, +z up), a uniform scale gives the object a
realistic size, heavy meshes are decimated, and the bounding-box centre goes to the origin.

Frame decisions (checked on the URDFs and the mesh extents):

* ``bicycle/bike.urdf`` (CC BY-SA 3.0, "Functional Bicycle" by thomasgivan, Thingiverse 309158):
  the frame link's STL meshes are rotated by rpy (1.57, 0, 0) in the URDF so that the wheels
  stand in the URDF x-z plane; the handlebar joint sits at x = +0.70 and the rear wheel at
  x = -0.69, so URDF +x is the front and +z up: no extra rotation. The assembled bike is 2.77 m
  long (the Thingiverse model is not to scale): scaled uniformly to 1.75 m long (1.02 m tall,
  0.71 m wheels). Decimated from 17.7k to 4k faces.
* ``racecar/racecar.urdf`` (pybullet_data, zlib licence): the MIT RACECAR 1/10 model car. URDF
  +x is forward (front steering hinges at x = +0.325, the ZED camera at x = +0.39), +z up: no
  extra rotation. Scaled uniformly from 0.46 m to 3.6 m long, i.e. used as a full-size car (a
  wide, flat one: 2.3 m wide, 1.26 m tall, the model car's proportions). Decimated from 12.8k
  to 4k faces.
* ``table/table.urdf``: a 1.5 x 1.0 m top on four legs, long side along URDF x. The library's
  diningtable convention puts the long side along y (a long side is the front), so it is
  rotated by +90 deg about z; scaled uniformly to 0.75 m tall. Two-fold symmetric.
* ``table_square/table_square.urdf``: 0.6 x 0.6 m top on four legs; scaled uniformly to 0.75 m
  tall (0.70 m square). Four-fold symmetric. (Its URDF also has a fixed ``world`` link.)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from scene3d_ros.world.procedural_models import box, cylinder, ellipsoid, finalize

PYBULLET_DATA_LICENSE = "zlib (pybullet_data, https://github.com/bulletphysics/bullet3)"


@dataclass(frozen=True)
class RealMeshSpec:
    """How one pybullet_data model joins the library (paths relative to pybullet_data)."""

    model_id: str
    category: str
    subtype: str
    symmetry: str
    urdf: str
    license: str
    yaw_deg: float          # rotation about +z from the URDF base frame to the canonical frame
    size_axis: int          # canonical axis whose extent is set to ``size`` metres (0 x, 1 y, 2 z)
    size: float
    max_faces: int = 4000   # decimate (open3d quadric decimation) above this face count


REAL_MESHES: tuple[RealMeshSpec, ...] = (
    RealMeshSpec("bicycle_pybullet_bike", "bicycle", "pybullet_bike", "none", "bicycle/bike.urdf",
                 "CC BY-SA 3.0 (pybullet_data bicycle: 'Functional Bicycle' by thomasgivan, "
                 "https://www.thingiverse.com/thing:309158)", 0.0, 0, 1.75),
    RealMeshSpec("car_pybullet_racecar", "car", "pybullet_racecar", "none", "racecar/racecar.urdf",
                 PYBULLET_DATA_LICENSE + " racecar", 0.0, 0, 3.6),
    RealMeshSpec("diningtable_pybullet_table", "diningtable", "pybullet_table", "c2", "table/table.urdf",
                 PYBULLET_DATA_LICENSE + " table", 90.0, 2, 0.75),
    RealMeshSpec("diningtable_pybullet_table_square", "diningtable", "pybullet_table_square", "c4",
                 "table_square/table_square.urdf", PYBULLET_DATA_LICENSE + " table_square", 0.0, 2, 0.75),
)
"""The shipped real meshes that join their categories."""


def pybullet_data_dir() -> Path:
    """Folder of the ``pybullet_data`` package (raises ImportError when pybullet is missing)."""
    import pybullet_data

    return Path(pybullet_data.getDataPath())


def _origin(element: ET.Element | None) -> np.ndarray:
    """4x4 transform of a URDF ``<origin xyz rpy>`` (fixed-axis roll, pitch, yaw)."""
    out = np.eye(4)
    if element is None:
        return out
    xyz = [float(v) for v in element.get("xyz", "0 0 0").replace(",", " ").split()]
    rpy = [float(v) for v in element.get("rpy", "0 0 0").replace(",", " ").split()]
    out[:3, :3] = Rotation.from_euler("xyz", rpy).as_matrix()
    out[:3, 3] = xyz
    return out


def _geometry(geometry: ET.Element, base_dir: Path) -> trimesh.Trimesh:
    """Mesh of one URDF ``<geometry>`` element in its own frame (metres)."""
    child = next(iter(geometry))
    if child.tag == "mesh":
        mesh = trimesh.load(base_dir / child.get("filename"), force="mesh", process=False)
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)  # merge seams split by UVs
        scale = [float(v) for v in child.get("scale", "1 1 1").split()]
        mesh.apply_scale(scale)
        return mesh
    if child.tag == "box":
        return box([float(v) for v in child.get("size").split()])
    if child.tag == "cylinder":
        half = float(child.get("length")) / 2.0
        return cylinder((0.0, 0.0, -half), (0.0, 0.0, half), float(child.get("radius")), 16)
    if child.tag == "sphere":
        r = float(child.get("radius"))
        return ellipsoid((0.0, 0.0, 0.0), (r, r, r))
    raise ValueError(f"unsupported URDF geometry <{child.tag}> under {base_dir}")


def assemble_urdf_visuals(urdf_path: str | Path) -> trimesh.Trimesh:
    """All visual geometry of a URDF, joints at zero, in the URDF root link frame (metres)."""
    urdf_path = Path(urdf_path)
    robot = ET.parse(urdf_path).getroot()
    links = {link.get("name"): link for link in robot.findall("link")}
    children = {}
    for joint in robot.findall("joint"):
        parent = joint.find("parent").get("link")
        child = joint.find("child").get("link")
        children.setdefault(parent, []).append((child, _origin(joint.find("origin"))))
    child_names = {c for kids in children.values() for c, _ in kids}
    roots = [name for name in links if name not in child_names]
    parts = []
    stack = [(root, np.eye(4)) for root in roots]
    while stack:
        name, pose = stack.pop(0)
        for visual in links[name].findall("visual"):
            mesh = _geometry(visual.find("geometry"), urdf_path.parent)
            mesh.apply_transform(pose @ _origin(visual.find("origin")))
            parts.append(mesh)
        for child, joint_pose in children.get(name, []):
            stack.append((child, pose @ joint_pose))
    if not parts:
        raise ValueError(f"URDF {urdf_path} has no visual geometry")
    return trimesh.util.concatenate(parts)


def _decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation (open3d) down to ``max_faces`` faces; the mesh unchanged if lighter."""
    if len(mesh.faces) <= max_faces:
        return mesh
    import open3d as o3d

    o3d_mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices),
                                         o3d.utility.Vector3iVector(mesh.faces))
    simple = o3d_mesh.simplify_quadric_decimation(target_number_of_triangles=int(max_faces))
    return trimesh.Trimesh(np.asarray(simple.vertices), np.asarray(simple.triangles), process=False)


def build_real_mesh(spec: RealMeshSpec, data_dir: str | Path | None = None) -> trimesh.Trimesh:
    """Load, orient, scale, decimate and centre one real mesh into the canonical frame (metres)."""
    data_dir = pybullet_data_dir() if data_dir is None else Path(data_dir)
    mesh = assemble_urdf_visuals(data_dir / spec.urdf)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(spec.yaw_deg), [0.0, 0.0, 1.0]))
    mesh.apply_scale(spec.size / float(mesh.extents[spec.size_axis]))
    mesh = _decimate(mesh, spec.max_faces)
    return finalize([mesh])
