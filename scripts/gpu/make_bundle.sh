#!/usr/bin/env bash
# Build .gpu/bundle.tar.xz: what a lent GPU machine needs to train scene3d_ros and cannot fetch
# (no registry is reachable there; its image has Python 3.12 with torch, torchvision, numpy, scipy,
# pyyaml, tqdm, pillow, matplotlib, but no open3d, trimesh or pycocotools):
#   site/   open3d-cpu, trimesh and pycocotools for that Python, at this project's pins, with
#           open3d trimmed to what ray casting needs (no GUI resources, TF/torch ops, ML code,
#           examples; its plotly/dash viewer imports made optional) so a call can carry it
#   lib/    the shared libraries libOpen3D links against, beyond glibc and libstdc++ (the GPU
#           image lacked libEGL, libGL*, libusb, libunistring...); stage.sh keeps only the ones
#           the machine lacks
#   cad_library/  this machine's CAD library (built by make setup; pybullet is not needed there)
# Usage: bash scripts/gpu/make_bundle.sh [OUT_DIR (default .gpu)]; PYVER=3.12 by default.
# Then see scripts/gpu/stage.sh for the two device calls.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-.gpu}
PYVER=${PYVER:-3.12}
VENV=${VENV:-.venv}
pin() { grep -i "^$1==" requirements/lock.txt | head -n 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "[bundle] wheels for Python $PYVER: $(pin open3d-cpu) $(pin trimesh) $(pin pycocotools)"
platforms=()
for p in manylinux_2_35_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64; do platforms+=(--platform "$p"); done
"$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp "${platforms[@]}" -d "$work/wheels" \
    "$(pin open3d-cpu)" "$(pin trimesh)" "$(pin pycocotools)"

mkdir -p "$work/bundle/site" "$work/bundle/lib"
for wheel in "$work"/wheels/*.whl; do
    "$VENV/bin/python" -m zipfile -e "$wheel" "$work/bundle/site"
done
o3d="$work/bundle/site/open3d"
rm -rf "$o3d"/resources "$o3d"/examples "$o3d"/_ml3d "$o3d"/labextension "$o3d"/nbextension \
    "$o3d"/agent_skills "$o3d"/open3d_tf_ops.so "$o3d"/open3d_torch_ops.so
"$VENV/bin/python" - "$o3d/visualization/__init__.py" <<'EOF'
import sys
from pathlib import Path

path = Path(sys.argv[1])
text = path.read_text()
viewer = "from .draw_plotly import get_plotly_fig\nfrom .draw_plotly import draw_plotly\nfrom .draw_plotly import draw_plotly_server\n"
if viewer not in text:
    sys.exit(f"{path}: the plotly imports moved; update scripts/gpu/make_bundle.sh")
optional = "try:  # plotly/dash viewer: optional in this bundle\n" + "".join(
    f"    {line}\n" for line in viewer.splitlines()) + "except ImportError:\n    pass\n"
path.write_text(text.replace(viewer, optional))
EOF

# libraries libOpen3D needs beyond the C/C++ runtime, from this Debian 12 machine
ldd "$VENV"/lib/python3.*/site-packages/open3d/libOpen3D.so.* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' |
    grep -v '/site-packages/' | while read -r lib; do cp -L "$lib" "$work/bundle/lib/"; done

library=$("$VENV/bin/python" -c "from scene3d_ros.paths import default_cad_library_dir; print(default_cad_library_dir())")
[ -f "$library/library.json" ] || { echo "[bundle] no CAD library at $library: run make setup first" >&2; exit 1; }
cp -r "$library" "$work/bundle/cad_library"

mkdir -p "$OUT"
tar -C "$work/bundle" -cf - . | xz -T0 -6 > "$OUT/bundle.tar.xz.tmp"
mv "$OUT/bundle.tar.xz.tmp" "$OUT/bundle.tar.xz"
echo "[bundle] $OUT/bundle.tar.xz: $(du -m "$OUT/bundle.tar.xz" | cut -f1) MiB (lib: $(ls "$work/bundle/lib" | tr '\n' ' '))"
