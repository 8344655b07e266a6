"""The package as a ROS 2 package: manifest, entry points, and a real `colcon build`."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "console_scripts" for k in node.keys):
            entries = node.values[[k.value for k in node.keys].index("console_scripts")]
            out = {}
            for element in entries.elts:
                text = element.value if isinstance(element, ast.Constant) else ast.unparse(element)
                text = text.strip("f'\"").replace("{PACKAGE}", "scene3d_ros")
                name, target = (s.strip() for s in text.split("="))
                out[name] = target
            return out
    raise AssertionError("no console_scripts in setup.py")


def test_manifest_declares_every_ros_dependency():
    manifest = ET.parse(ROOT / "package.xml").getroot()
    assert manifest.get("format") == "3" and manifest.findtext("name") == "scene3d_ros"
    exec_deps = {e.text for e in manifest.findall("exec_depend")}
    required = {"rclpy", "std_msgs", "sensor_msgs", "geometry_msgs", "vision_msgs", "tf2_msgs", "visualization_msgs"}
    assert required <= exec_deps, f"missing exec_depend: {required - exec_deps}"
    assert manifest.find("export/build_type").text == "ament_python"


def test_every_console_script_points_at_a_callable_main():
    scripts = _console_scripts()
    assert {"build_cad_library", "generate_data", "synthetic_camera", "demo"} <= set(scripts)
    for name, target in scripts.items():
        module_name, func = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, func)), f"{name}: {target} is not callable"


def test_perception_node_entry_points_make_openmp_wait_passively_before_torch_loads():
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads it: the perception_node console script
    sets it (unless the user chose a policy) before importing the node's module, which imports torch.
    (``python -m scene3d_ros.ros.perception_node`` is checked by the node's DDS tests' log line.)"""
    assert _console_scripts()["perception_node"] == "scene3d_ros.ros.node_main:perception_node_main"
    probe = ("import os, sys, types\n"
             "node = types.ModuleType('scene3d_ros.ros.perception_node')\n"  # stands in for the node's module
             "node.main = lambda: print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules) or 0\n"
             "sys.modules[node.__name__] = node\n"
             "from scene3d_ros.ros.node_main import perception_node_main\n"
             "sys.exit(perception_node_main())\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    default = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert default.returncode == 0 and default.stdout.split() == ["PASSIVE", "False"], default.stdout + default.stderr
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                            capture_output=True, text=True, timeout=120)
    assert chosen.returncode == 0 and chosen.stdout.split() == ["ACTIVE", "False"], chosen.stdout + chosen.stderr
    source = (ROOT / "scene3d_ros" / "ros" / "perception_node.py").read_text()
    first_import = min(source.index("\nimport "), source.index("\nfrom scene3d_ros import"))
    assert source.index("use_passive_openmp()") < first_import  # the python -m path, before torch


def test_library_never_imports_rclpy():
    offenders = []
    for path in (ROOT / "scene3d_ros").rglob("*.py"):
        if "ros" in path.relative_to(ROOT / "scene3d_ros").parts[:1]:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "rclpy" or n.startswith("rclpy.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"library modules importing rclpy: {offenders}"


@pytest.mark.skipif(shutil.which("colcon", path=os.path.dirname(sys.executable)) is None, reason="colcon not installed")
def test_colcon_build_installs_executables_launch_and_config(tmp_path):
    src = tmp_path / "ws" / "src"
    src.mkdir(parents=True)
    (src / "scene3d_ros").symlink_to(ROOT)
    colcon = shutil.which("colcon", path=os.path.dirname(sys.executable))
    result = subprocess.run([colcon, "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(src),
                             "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / "install" / "scene3d_ros"
    for name in _console_scripts():
        assert (prefix / "lib" / "scene3d_ros" / name).exists(), f"executable {name} not installed"
    share = prefix / "share" / "scene3d_ros"
    assert (share / "package.xml").exists()
    assert (share / "config" / "fastdds_localhost.xml").exists()
    assert (share / "config" / "scene3d.rviz").exists()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "scene3d_ros").exists()
