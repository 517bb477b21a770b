#!/usr/bin/env python
"""Execute every notebook headless into reports/: HTML per notebook and a summary of the key numbers.

    python scripts/reproduce.py [--notebooks notebooks/0*.ipynb] [--out reports] [--figures docs/figures]
    python scripts/reproduce.py --seed 17            # every notebook at SEED = 17, into reports/seed17/

Each notebook runs top to bottom in a fresh kernel of this environment with its default parameters (CPU, offline,
embedded default model); ``--seed`` replaces the ``SEED = ...`` line of each notebook's ``parameters`` cell (the
notebooks' claims are checked with intervals, so they must hold at any seed), and then writes reports and figures
under ``<out>/seed<N>/`` unless ``--out``/``--figures`` say otherwise. Key numbers a notebook records with
``freeinit_lab.report.record`` are collected into ``reports/summary.md`` (and ``summary.json``); key figures saved
with ``freeinit_lab.report.save_figure`` land in ``--figures`` as PNG (drawn after the last notebook, all in one
browser session), where the README shows them. The default network's speed on this machine is timed before the
first notebook and after the last (:func:`network_speed`, milliseconds per video and sampler step), so that run
times from machines of other speeds, or from one machine whose speed changed, can be compared. Exits non-zero if any notebook fails (a cell's error, a cell over
``--timeout`` or a dead kernel; its HTML still shows where, and the notebooks after it still run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None, help="notebooks to run (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--out", default=str(ROOT / "reports"))
    parser.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--seed", type=int, default=None, help="run every notebook with SEED = this value")
    args = parser.parse_args(argv)
    run_start = time.perf_counter()
    if args.seed is not None:
        if args.out == str(ROOT / "reports"):
            args.out = str(ROOT / "reports" / f"seed{args.seed}")
        if args.figures == str(ROOT / "docs" / "figures"):
            args.figures = str(Path(args.out) / "figures")

    notebooks = [Path(p) for p in args.notebooks] if args.notebooks else sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:  # before any notebook runs, not after the ones listed first
        known = ", ".join(p.name for p in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")))
        parser.error(f"no notebook {', '.join(missing)}; the notebooks are {known} (in notebooks/)")
    books = [nbformat.read(path, as_version=4) for path in notebooks]
    if args.seed is not None:  # every notebook's SEED line is checked before the first one runs
        for nb, path in zip(books, notebooks):
            set_seed(nb, args.seed, path)
    out = Path(args.out)
    numbers_dir = out / "numbers"
    shutil.rmtree(numbers_dir, ignore_errors=True)
    numbers_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FREEINIT_LAB_REPORT_DIR"] = str(numbers_dir)
    os.environ["FREEINIT_LAB_FIGURE_DIR"] = str(Path(args.figures))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if shutil.which("chromium") and "BROWSER_PATH" not in os.environ:
        os.environ["BROWSER_PATH"] = shutil.which("chromium")  # kaleido's PNG export
    from freeinit_lab.viz.report import PENDING_SUFFIX, render_figures

    for stale in Path(args.figures).glob(f"*{PENDING_SUFFIX}"):  # specs an earlier, interrupted run left
        stale.unlink()

    speed_before = network_speed()
    tqdm.write(f"default network: {speed_before:.1f} ms per video-step on this machine before the notebooks")
    results = []
    bar = tqdm(list(zip(notebooks, books)), desc="notebooks", unit="nb")
    for path, nb in bar:
        name = path.stem
        bar.set_postfix_str(name)
        os.environ["FREEINIT_LAB_NOTEBOOK"] = name
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except CellExecutionError as exc:
            error = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        except (CellTimeoutError, DeadKernelError) as exc:  # the notebook failed; the others still run
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        seconds = time.perf_counter() - start
        nbformat.write(nb, out / f"{name}.ipynb")
        html, _ = HTMLExporter().from_notebook_node(with_static_plotly(nb))
        (out / f"{name}.html").write_text(html)
        numbers_file = numbers_dir / f"{name}.json"
        numbers = json.loads(numbers_file.read_text()) if numbers_file.exists() else {}
        results.append({"notebook": name, "seconds": round(seconds, 1), "ok": error is None, "error": error, "numbers": numbers})
        tqdm.write(f"{name}: {'ok' if error is None else 'FAILED: ' + error} in {seconds:.1f} s, {len(numbers)} key numbers")

    speed_after = network_speed()
    tqdm.write(f"default network: {speed_after:.1f} ms per video-step after the notebooks")
    start = time.perf_counter()
    pngs = render_figures(args.figures)  # the figures the notebooks saved, in one browser session
    figure_seconds = time.perf_counter() - start
    print(f"{len(pngs)} figure PNG(s) drawn in {figure_seconds:.1f} s")

    lines = ["# freeinit_lab — reproduction summary", "", "| notebook | status | CPU time (s) |", "|---|---|---|"]
    lines += [f"| [{r['notebook']}]({r['notebook']}.html) | {'ok' if r['ok'] else 'FAILED'} | {r['seconds']} |" for r in results]
    lines += ["", "## Key numbers (recorded by the notebooks with freeinit_lab.report.record; which of them a notebook asserts, and with which interval, its HTML shows)", "", "| notebook | number | value | meaning |", "|---|---|---|---|"]
    for r in results:
        for key, entry in r["numbers"].items():
            value = entry["value"]
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {r['notebook']} | `{key}` | {shown} | {entry.get('description', '')} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    print(f"\nreports in {out}/ (HTML per notebook, summary.md); figures in {args.figures}/")
    everything = sorted(p.resolve() for p in notebooks) == sorted(p.resolve() for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    if args.seed is None and everything and all(r["ok"] for r in results) and Path(args.figures) == ROOT / "docs" / "figures":
        numbers = key_numbers(results, figure_seconds=figure_seconds, wall_seconds=time.perf_counter() - run_start,
                              speed=(speed_before, speed_after))
        KEY_NUMBERS.write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
        update_readme(README, KEY_FIGURES_TEMPLATE.read_text(), numbers)
        print(f"README.md's key figures and timings regenerated from this run ({KEY_NUMBERS.relative_to(ROOT)})")
    else:
        print("README.md not regenerated: that needs every notebook, at its default SEED, passing, with the figures in "
              "docs/figures (plain `make reproduce`)")
    return 0 if all(r["ok"] for r in results) else 1


#: the README's generated part: the key figures' captions (template below) and the notebooks' timings
README = ROOT / "README.md"
KEY_FIGURES_TEMPLATE = ROOT / "docs" / "key_figures.md.in"
KEY_NUMBERS = ROOT / "docs" / "key_numbers.json"
BEGIN = "<!-- key figures: generated by `make reproduce` from docs/key_figures.md.in and docs/key_numbers.json; edit those -->"
END = "<!-- end of key figures -->"


def network_speed(batch: int = 16, calls: int = 3) -> float:
    """Milliseconds the embedded default network takes per video and sampler step on this machine: ``calls``
    forward passes of ``batch`` videos of its size (after one untimed pass), with torch's default threads, as the
    notebooks run it. ``t_call / batch`` is what one step of one video costs: the notebooks' sampling time is about
    this times their video-steps (steps × videos they sample)."""
    import torch

    from freeinit_lab.embedded.pipelines import load_default_pipeline

    pipe = load_default_pipeline()
    unet = pipe.unet
    x = torch.randn(batch, *pipe.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((batch,), 500)
    with torch.no_grad():
        unet(x, t)
        start = time.perf_counter()
        for _ in range(calls):
            unet(x, t)
    return 1000 * (time.perf_counter() - start) / (calls * batch)


def key_numbers(results: list[dict], *, figure_seconds: float | None = None,
                wall_seconds: float | None = None, speed: tuple[float, float] | None = None) -> dict:
    """``{"notebook/name": value}`` of every recorded number (and ``name_low``/``name_high``, its interval's ends,
    where it was recorded with one), plus ``"notebook/seconds"`` (wall time) per notebook, ``"total/seconds"``
    (their sum) and, where given, ``"figures/seconds"`` (drawing the PNGs), ``"total/wall_seconds"`` (the whole
    run: kernels' start, notebooks, HTML, PNGs) and ``"machine/ms_per_video_step_before"`` / ``_after``
    (:func:`network_speed` before the first notebook and after the last)."""
    numbers = {f"{r['notebook']}/{k}": e["value"] for r in results for k, e in r["numbers"].items()}
    ends = {f"{r['notebook']}/{k}_{end}": e[end] for r in results for k, e in r["numbers"].items()
            for end in ("low", "high") if end in e}
    clash = sorted(set(ends) & set(numbers))
    if clash:
        raise ValueError(f"recorded numbers {clash} clash with the interval ends of others: rename them")
    numbers.update(ends)
    numbers.update({f"{r['notebook']}/seconds": r["seconds"] for r in results})
    numbers["total/seconds"] = round(sum(r["seconds"] for r in results), 1)
    if figure_seconds is not None:
        numbers["figures/seconds"] = round(float(figure_seconds), 1)
    if wall_seconds is not None:
        numbers["total/wall_seconds"] = round(float(wall_seconds), 1)
    if speed is not None:
        numbers["machine/ms_per_video_step_before"] = round(float(speed[0]), 1)
        numbers["machine/ms_per_video_step_after"] = round(float(speed[1]), 1)
    return numbers


def render_key_figures(template: str, numbers: dict) -> str:
    """Fill ``{{notebook/name:format}}`` placeholders (Python format specs, e.g. ``{{02_x/ratio:.2f}}``, ``:.0%``)
    from ``numbers``; a placeholder naming no recorded number is an error that names it, never left in the text."""
    import re

    def fill(match):
        key, spec = match.group(1), (match.group(2) or "").strip()
        if key not in numbers:
            raise KeyError(f"docs/key_figures.md.in names {key!r}, which no notebook recorded; recorded: "
                           + ", ".join(sorted(numbers)))
        return format(numbers[key], spec)

    text = re.sub(r"\{\{\s*([A-Za-z0-9_]+/[A-Za-z0-9_]+)\s*(?::([^}]*))?\}\}", fill, template)
    if "{{" in text or "}}" in text:
        raise ValueError("docs/key_figures.md.in has a malformed placeholder (use {{notebook/name:format}})")
    return text


def update_readme(readme: Path, template: str, numbers: dict) -> None:
    """Replace the README's part between the BEGIN and END markers by the rendered template."""
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme} needs one pair of markers around its key figures: {BEGIN} ... {END}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    readme.write_text(head + BEGIN + "\n" + render_key_figures(template, numbers).strip("\n") + "\n" + END + tail)


def set_seed(nb, seed: int, path: Path) -> None:
    """Replace the ``SEED = ...`` line of the notebook's ``parameters`` cell by ``SEED = seed`` (in place)."""
    import re

    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise SystemExit(f"{path}: expected one cell tagged 'parameters', found {len(cells)}")
    source, n = re.subn(r"^SEED\s*=\s*[^#\n]*", f"SEED = {int(seed)}  ", cells[0].source, count=1, flags=re.M)
    if n != 1:
        raise SystemExit(f"{path}: its parameters cell has no 'SEED = ...' line")
    cells[0].source = source


def with_static_plotly(nb):
    """A copy of an executed notebook whose plotly outputs also carry ``text/html``, so the HTML report shows them.

    Jupyter renders plotly's ``application/vnd.plotly.v1+json`` output itself, but nbconvert's HTML exporter cannot
    ("not able to be represented") and would drop every figure. The added HTML loads plotly.js from its CDN.
    """
    import copy

    import plotly.io as pio

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            spec = data.get("application/vnd.plotly.v1+json")
            if spec is not None and "text/html" not in data:
                fig = pio.from_json(spec if isinstance(spec, str) else json.dumps(spec), skip_invalid=True)
                data["text/html"] = pio.to_html(fig, include_plotlyjs="cdn", full_html=False)
    return nb


if __name__ == "__main__":
    sys.exit(main())
