"""The main job at this stage: sample scenes rendered to files people can open."""

import json

import numpy as np
from PIL import Image

from scene3d_ros.cli.demo import main


def test_demo_writes_pictures_and_ground_truth(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--output", str(out), "--num-scenes", "2", "--seed", "5", "--no-model",
                 "--set", "scene.image_sizes=[[160,120]]"]) == 0
    assert "wrote 2 scenes" in capsys.readouterr().out
    for i in range(2):
        rgb = np.asarray(Image.open(out / f"scene_{i:03d}_rgb.png"))
        assert rgb.shape == (120, 160, 3)
        overview = np.asarray(Image.open(out / f"scene_{i:03d}_overview.png"))
        assert overview.shape[0] == 120 and overview.shape[1] > 4 * 160
        truth = json.loads((out / f"scene_{i:03d}_ground_truth.json").read_text())
        assert truth["width"] == 160 and len(truth["objects"]) >= 1
        for obj in truth["objects"]:
            assert obj["quaternion"][0] >= 0 and obj["translation"][2] > 0


def test_demo_rejects_bad_config(tmp_path, capsys):
    assert main(["--output", str(tmp_path), "--set", "scene.no_such_key=1"]) == 1
    assert "no_such_key" in capsys.readouterr().err
