"""The one config loader: YAML + overrides, strict dataclass sections."""

from dataclasses import dataclass, field

import pytest

from scene3d_ros.config import ConfigError, apply_overrides, dataclass_from_dict, load_config


@dataclass(frozen=True)
class Inner:
    size: tuple[int, int] = (256, 256)
    name: str = "a"


@dataclass(frozen=True)
class Outer:
    seed: int = 0
    inner: Inner = field(default_factory=Inner)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ninner:\n  name: b\n")
    config = load_config(path, ["inner.size=[640, 480]", "seed=5"], defaults={"inner": {"name": "x", "size": [1, 1]}})
    assert config == {"seed": 5, "inner": {"name": "b", "size": [640, 480]}}
    obj = dataclass_from_dict(Outer, config)
    assert obj.inner.size == (640, 480) and obj.seed == 5


def test_unknown_key_is_an_error_naming_the_section():
    with pytest.raises(ConfigError, match=r"sizee.*Outer.inner"):
        dataclass_from_dict(Outer, {"inner": {"sizee": [1, 2]}})


@pytest.mark.parametrize("bad", ["novalue", "=3", "seed.x=1"])
def test_bad_overrides(bad):
    with pytest.raises(ConfigError):
        apply_overrides({"seed": 1}, [bad])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_exponent_floats_without_a_dot_are_floats_in_files_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-4\n  name: e5\n")
    config = load_config(path, ["optim.other=4E-3", "optim.list=[1e-2, 2]"])
    assert config["optim"] == {"lr": 1e-4, "name": "e5", "other": 4e-3, "list": [1e-2, 2]}
