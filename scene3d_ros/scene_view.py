"""The recovered 3D scene: retrieved CAD meshes (or cuboids) posed in the camera, as pictures and GLB.

Input: the pipeline's objects (:class:`scene3d_ros.pipeline.DetectedObject`), poses in the
camera optical frame (x right, y down, z forward; metres), each with a retrieved ``model_id``
or none (a cuboid of the object's ``size``, metres along the object's x front / y left / z up).
Output: the meshes rendered from the camera and from a second viewpoint orbiting the scene (the
right half of the paper's qualitative figure) and the scene as a binary glTF (GLB) file.
Colours follow :func:`scene3d_ros.visualization.instance_colour` of each object's index, as in
the instance-segmentation picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from scene3d_ros.geometry import CameraIntrinsics, quaternion_to_matrix
from scene3d_ros.pipeline import DetectedObject
from scene3d_ros.visualization import instance_colour
from scene3d_ros.world.cad_library import CadLibrary
from scene3d_ros.world.renderer import Light, Material, Renderer, RenderObject

OPTICAL_TO_GLTF = np.diag([1.0, -1.0, -1.0])
"""Optical frame (y down, z forward) -> glTF's camera convention (y up, z towards the viewer)."""

VIEW_BACKGROUND = (235, 235, 235)


@dataclass(frozen=True)
class PosedMesh:
    """One object's mesh (object frame, metres) with its pose in the optical frame."""

    name: str
    mesh: trimesh.Trimesh
    rotation: np.ndarray
    translation: np.ndarray
    colour: tuple[int, int, int]
    cuboid: bool


def posed_meshes(objects: Sequence[DetectedObject], library: CadLibrary) -> list[PosedMesh]:
    """The retrieved mesh of each object (a box of ``size`` for the cuboid fallback), posed: a
    retrieved model in the rotation of its chosen view (``model_quaternion``), a cuboid in the
    network's rotation."""
    meshes = []
    for k, obj in enumerate(objects):
        cuboid = obj.model_id is None
        mesh = trimesh.creation.box(extents=np.asarray(obj.size, dtype=np.float64)) if cuboid \
            else library.mesh(obj.model_id)
        rotation = obj.quaternion if cuboid or obj.model_quaternion is None else obj.model_quaternion
        meshes.append(PosedMesh(f"{obj.category}_{k}", mesh, quaternion_to_matrix(np.asarray(rotation)),
                                np.asarray(obj.translation, dtype=np.float64), instance_colour(k), cuboid))
    return meshes


def orbit_camera(centre: np.ndarray, azimuth_deg: float = 45.0, elevation_deg: float = 30.0,
                 distance_factor: float = 1.3) -> tuple[np.ndarray, np.ndarray]:
    """A camera that looks at ``centre`` (optical frame of the real camera, metres) from
    ``distance_factor`` times the real camera's distance, turned ``azimuth_deg`` about the real
    camera's up axis (-y) and raised ``elevation_deg``. Returns ``(R, e)``: the virtual camera's axes as columns (its optical
    frame in the real one) and its position; a point ``p`` maps to ``R.T @ (p - e)``."""
    centre = np.asarray(centre, dtype=np.float64)
    offset = -centre * distance_factor  # from the scene centre towards the real camera
    offset = Rotation.from_euler("y", azimuth_deg, degrees=True).apply(offset)
    right = np.cross(offset / max(np.linalg.norm(offset), 1e-9), [0.0, -1.0, 0.0])
    if np.linalg.norm(right) > 1e-9:
        offset = Rotation.from_rotvec(np.radians(elevation_deg) * right / np.linalg.norm(right)).apply(offset)
    eye = centre + offset
    forward = (centre - eye) / max(np.linalg.norm(centre - eye), 1e-9)
    x = np.cross(forward, [0.0, -1.0, 0.0])
    x = x / max(np.linalg.norm(x), 1e-9)
    return np.stack([x, np.cross(forward, x), forward], axis=1), eye


def render_views(meshes: Sequence[PosedMesh], intrinsics: CameraIntrinsics, renderer: Renderer,
                 azimuth_deg: float = 45.0, elevation_deg: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(from the camera, from the orbiting viewpoint): two HxWx3 uint8 renderings of ``meshes``
    with ``intrinsics`` on a light grey background (the second looks at the objects' centroid)."""
    background = np.empty((intrinsics.height, intrinsics.width, 3), np.uint8)
    background[:] = VIEW_BACKGROUND
    light = Light(direction=(0.3, -0.6, -0.74), ambient=0.45, diffuse=0.7)

    def material(m: PosedMesh) -> Material:
        colour = tuple(c / 255.0 for c in m.colour)
        return Material(colour=colour, secondary_colour=colour, dark_colour=tuple(0.6 * c for c in colour))

    front = [RenderObject(m.mesh, m.rotation, m.translation, material(m)) for m in meshes]
    camera_view = renderer.render(front, intrinsics, background=background, light=light, amodal=False).rgb
    if not meshes:
        return camera_view, background.copy()
    centre = np.mean([m.translation for m in meshes], axis=0)
    axes, eye = orbit_camera(centre, azimuth_deg, elevation_deg)
    side = [RenderObject(m.mesh, axes.T @ m.rotation, axes.T @ (m.translation - eye), material(m)) for m in meshes]
    side_view = renderer.render(side, intrinsics, background=background, light=light, amodal=False).rgb
    return camera_view, side_view


def scene_glb(meshes: Sequence[PosedMesh]) -> bytes:
    """The posed meshes as a GLB file (glTF axes: the camera at the origin looking down -z, y up;
    one node per object named ``<category>_<k>``, coloured like the pictures, plus a grey
    pyramid node ``camera`` marking the camera: 10 cm deep, 4:3, apex at the optical centre)."""
    scene = trimesh.Scene()
    apex_and_corners = np.array([[0, 0, 0], [-0.067, -0.05, 0.1], [0.067, -0.05, 0.1], [0.067, 0.05, 0.1],
                                 [-0.067, 0.05, 0.1]]) @ OPTICAL_TO_GLTF.T
    camera = trimesh.Trimesh(apex_and_corners, [[0, 2, 1], [0, 3, 2], [0, 4, 3], [0, 1, 4], [1, 2, 3], [1, 3, 4]])
    camera.visual = trimesh.visual.ColorVisuals(camera, face_colors=np.array([128, 128, 128, 255], np.uint8))
    scene.add_geometry(camera, node_name="camera", geom_name="camera")
    for m in meshes:
        mesh = m.mesh.copy()
        mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.array([*m.colour, 255], np.uint8))
        transform = np.eye(4)
        transform[:3, :3] = OPTICAL_TO_GLTF @ m.rotation
        transform[:3, 3] = OPTICAL_TO_GLTF @ m.translation
        scene.add_geometry(mesh, node_name=m.name, geom_name=m.name, transform=transform)
    return scene.export(file_type="glb")
