"""train under torchrun: two CPU processes (gloo on 127.0.0.1) end with identical weights, only
rank 0 writes the run's files, and a signal to one rank stops both at the same step."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import torch
import yaml
from tiny_model import TINY_MODEL

from scene3d_ros.data.shards import GenerateConfig, OutputConfig, generate_dataset
from scene3d_ros.model.checkpoint import load_checkpoint
from scene3d_ros.world.cad_library import ensure_cad_library
from scene3d_ros.world.scene_sampler import SceneConfig

STEPS = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory):
    ensure_cad_library()
    tmp = tmp_path_factory.mktemp("ddp_data")
    config = GenerateConfig(scene=SceneConfig(image_sizes=((128, 128),), num_objects_range=(1, 3)),
                            output=OutputConfig(num_scenes=8, scenes_per_shard=8, seed=0))
    generate_dataset(config, tmp, workers=1)
    return tmp


def torchrun(data, tmp, max_steps):
    """(command, env) of a 2-process CPU run of ``max_steps`` steps into ``tmp / "run"``."""
    train_config = {
        "model": TINY_MODEL,
        "data": {"train": str(data), "batch_size": 1, "num_workers": 0},
        "optim": {"optimizer": "sgd", "lr": 0.01, "warmup_steps": 1, "max_steps": max_steps},
        "run": {"checkpoint_every": STEPS, "log_every": 1, "eval_every": 0, "deterministic": True,
                "num_threads": 1, "progress": False, "debug_dump": True},
    }
    (tmp / "train.yaml").write_text(yaml.safe_dump(train_config))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "scene3d_ros.cli.train",
               "--config", str(tmp / "train.yaml"), "--output", str(tmp / "run")]
    return command, dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, ddp_data):
    tmp = tmp_path_factory.mktemp("ddp")
    command, env = torchrun(ddp_data, tmp, STEPS)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return tmp / "run"


def test_both_ranks_end_with_the_same_weights(ddp_run):
    dumps = [json.loads((ddp_run / f"debug_rank{r}.json").read_text()) for r in (0, 1)]
    assert [d["world_size"] for d in dumps] == [2, 2] and [d["step"] for d in dumps] == [STEPS, STEPS]
    assert dumps[0]["parameter_sha256"] == dumps[1]["parameter_sha256"]
    rank1 = torch.load(ddp_run / "debug_rank1_state.pt", weights_only=True)
    checkpoint = load_checkpoint(ddp_run / "last.pt")
    assert checkpoint["step"] == STEPS and checkpoint["extra"]["world_size"] == 2
    assert len(checkpoint["extra"]["rng_per_rank"]) == 2
    for key, value in checkpoint["model"].items():
        assert torch.equal(rank1[key], value), key


def test_only_rank_0_writes_the_run_files(ddp_run):
    dumps = [json.loads((ddp_run / f"debug_rank{r}.json").read_text()) for r in (0, 1)]
    assert dumps[1]["files_written"] == []
    assert {"last.pt", "metrics.csv", "curves.png", "config.yaml", f"step_{STEPS:06d}.pt"} <= set(dumps[0]["files_written"])
    with (ddp_run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    # two processes with one image each: two images per step
    assert float(rows[-1]["images_per_s"]) * float(rows[-1]["seconds_per_step"]) == pytest.approx(2.0, rel=1e-3)


def test_a_signal_to_one_rank_stops_both_at_the_same_step_with_a_checkpoint(ddp_data, tmp_path):
    """SIGTERM to rank 1 alone: the ranks agree after the step in progress, both stop there and
    rank 0 writes last.pt at that step (no rank is left waiting in a collective)."""
    command, env = torchrun(ddp_data, tmp_path, 1000)
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.csv"
    try:
        deadline = time.monotonic() + 180
        while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):  # header + 2 steps
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate(timeout=30)
            time.sleep(0.05)
        ranks = {int(p.environ()["RANK"]): p for p in psutil.Process(launcher.pid).children(recursive=True)
                 if "RANK" in p.environ()}
        assert sorted(ranks) == [0, 1]
        ranks[1].send_signal(signal.SIGTERM)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    dumps = [json.loads((tmp_path / "run" / f"debug_rank{r}.json").read_text()) for r in (0, 1)]
    step = load_checkpoint(tmp_path / "run" / "last.pt")["step"]
    assert [d["step"] for d in dumps] == [step, step] and 2 <= step < 1000, err[-3000:]
    assert dumps[0]["parameter_sha256"] == dumps[1]["parameter_sha256"]
    assert "stopped by a signal to another rank at step" in err, err[-3000:]
