"""Cost of ``import freeinit_lab`` beyond ``import torch``, each in fresh interpreters, interleaved.

    python benchmarks/bench_import.py [--repeats N]

Prints the median wall time of ``import torch`` and of ``import torch, freeinit_lab`` (fresh subprocesses, run
alternately so machine load hits both alike), the excess of the second over the first, and their ratio. Goal: the
excess stays ≤ 1 s on an idle 2-core machine (the package imports its modules on first use). Also lists which
heavy third-party modules the import pulled in (none expected).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("diffusers", "transformers", "pandas", "xarray", "plotly", "ipywidgets", "scipy")
GOAL_S = 1.0


def _time(code: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    _time("import torch, freeinit_lab")  # warm the OS file cache once
    torch_s, both_s = [], []
    for _ in range(args.repeats):
        torch_s.append(_time("import torch"))
        both_s.append(_time("import torch, freeinit_lab"))
    t, b = statistics.median(torch_s), statistics.median(both_s)
    pulled = subprocess.run(
        [sys.executable, "-c", f"import sys, freeinit_lab; print(*[m for m in {HEAVY!r} if m in sys.modules])"],
        check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    ).stdout.split()
    excess = b - t
    print(f"import torch                 {t:6.2f} s  (median of {args.repeats})")
    print(f"import torch, freeinit_lab   {b:6.2f} s")
    print(f"excess of freeinit_lab       {excess:6.2f} s  (goal <= {GOAL_S:.1f} s: {'met' if excess <= GOAL_S else 'MISSED'})")
    print(f"ratio                        {b / t:6.2f}x")
    print(f"heavy modules imported       {', '.join(pulled) or 'none'}")
    return 0 if excess <= GOAL_S and not pulled else 1


if __name__ == "__main__":
    sys.exit(main())
