"""Image folders and the sample photos: intrinsics from intrinsics.yaml or a field of view, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scene3d_ros.image_source import ImageSourceError, photos_in_folder, sample_photos


def _save(path, width, height, value=100):
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)


def test_folder_in_name_order_with_a_field_of_view_and_bad_files_skipped(tmp_path):
    _save(tmp_path / "b.jpg", 40, 30)
    _save(tmp_path / "a.png", 64, 48)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    photos, skipped = photos_in_folder(tmp_path, hfov_deg=90.0)
    assert [p.path.name for p in photos] == ["a.png", "b.jpg"]
    assert len(skipped) == 1 and "broken.png" in skipped[0]
    first = photos[0]
    assert not first.calibrated and (first.intrinsics.width, first.intrinsics.height) == (64, 48)
    assert first.intrinsics.fx == pytest.approx(32.0)  # tan(45 deg) = 1: f = width / 2
    assert first.read_rgb().shape == (48, 64, 3)
    _save(tmp_path / "a.png", 10, 10)  # rewritten after the listing
    with pytest.raises(ImageSourceError, match="now 10x10"):
        first.read_rgb()


def test_intrinsics_file_calibrates_every_image_of_one_size(tmp_path):
    _save(tmp_path / "a.png", 64, 48)
    _save(tmp_path / "b.png", 64, 48)
    (tmp_path / "intrinsics.yaml").write_text("fx: 50.0\nfy: 51.0\ncx: 30.0\ncy: 25.0\n")
    photos, _ = photos_in_folder(tmp_path)
    assert all(p.calibrated for p in photos)
    assert (photos[1].intrinsics.fy, photos[1].intrinsics.cx) == (51.0, 30.0)
    _save(tmp_path / "c.png", 32, 32)
    with pytest.raises(ImageSourceError, match="one camera"):
        photos_in_folder(tmp_path)
    (tmp_path / "intrinsics.yaml").write_text("fx: .nan\nfy: 1\ncx: 0\ncy: 0\n")
    with pytest.raises(ImageSourceError, match="fx, fy, cx, cy"):
        photos_in_folder(tmp_path)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ImageSourceError, match="no image folder"):
        photos_in_folder(tmp_path / "nowhere")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ImageSourceError, match="no readable .*skipped: x.png"):
        photos_in_folder(tmp_path)


def test_sample_photos_are_the_calibrated_real_motorbike_pair():
    photos = sample_photos()
    assert len(photos) == 2 and all(p.calibrated for p in photos)
    left = photos[0].read_rgb()
    assert left.shape == (500, 741, 3)
    assert photos[0].intrinsics.fx == pytest.approx(994.978)
    assert left.std() > 20  # a real photo, not a blank
