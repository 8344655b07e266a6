"""ament_python package scene3d_ros (also pip-installable for development: pip install -e .)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "scene3d_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="scene3d_ros developers",
    maintainer_email="scene3d-ros@example.org",
    description="Camera images to semantic 3D scenes: Mask R-CNN with pose and descriptor heads, "
    "CAD model retrieval, vision_msgs detections and TF frames.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"build_cad_library = {PACKAGE}.cli.build_cad_library:main",
            f"build_shape_db = {PACKAGE}.cli.build_shape_db:main",
            f"bringup = {PACKAGE}.cli.bringup:main",
            f"generate_data = {PACKAGE}.cli.generate_data:main",
            f"demo = {PACKAGE}.cli.demo:main",
            f"evaluate = {PACKAGE}.cli.evaluate:main",
            f"export_model = {PACKAGE}.cli.export_model:main",
            f"train = {PACKAGE}.cli.train:main",
            f"train_viewpoint = {PACKAGE}.cli.train_viewpoint:main",
            f"perception_node = {PACKAGE}.ros.node_main:perception_node_main",
            f"retrieval_node = {PACKAGE}.ros.retrieval_node:main",
            f"synthetic_camera = {PACKAGE}.ros.synthetic_camera:main",
            f"image_folder_camera = {PACKAGE}.ros.image_folder_camera:main",
        ],
    },
)
