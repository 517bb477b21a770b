"""scripts/reproduce.py: a notebook that fails in any way is reported and the others still run."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from unittest import mock

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reproduce.py"


def _reproduce_module():
    spec = importlib.util.spec_from_file_location("reproduce_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_a_cell_over_the_timeout_is_a_failed_notebook_not_a_crash(tmp_path):
    """A cell over --timeout raised nbclient's CellTimeoutError out of the script: the notebooks after it never ran
    and no summary was written (only CellExecutionError was caught). It is now that notebook's failure."""
    pytest.importorskip("nbclient")
    repro = _reproduce_module()
    slow = _notebook(tmp_path / "a_slow.ipynb", "import time\ntime.sleep(60)")
    fine = _notebook(tmp_path / "b_fine.ipynb", "x = 1")
    out = tmp_path / "reports"
    with mock.patch.dict(os.environ):
        code = repro.main(["--notebooks", str(slow), str(fine), "--out", str(out), "--figures",
                           str(tmp_path / "figures"), "--timeout", "2"])
    assert code == 1
    results = {r["notebook"]: r for r in json.loads((out / "summary.json").read_text())}
    assert not results["a_slow"]["ok"] and results["a_slow"]["error"].startswith("CellTimeoutError")
    assert results["b_fine"]["ok"]
    assert (out / "a_slow.html").exists() and "| [b_fine](b_fine.html) | ok |" in (out / "summary.md").read_text()


def test_a_notebook_without_a_seed_line_is_refused_before_any_runs(tmp_path):
    """--seed with a notebook whose parameters cell has no SEED line stopped the run at that notebook, after the
    ones before it had run; the lines are now checked first."""
    repro = _reproduce_module()
    first = _notebook(tmp_path / "a.ipynb", "SEED = 0")
    first_nb = json.loads(first.read_text())
    first_nb["cells"][0]["metadata"]["tags"] = ["parameters"]
    first.write_text(json.dumps(first_nb))
    second = _notebook(tmp_path / "b.ipynb", "N = 3")
    with mock.patch.dict(os.environ), mock.patch("nbclient.NotebookClient", side_effect=AssertionError("ran")):
        with pytest.raises(SystemExit, match="b.ipynb: expected one cell tagged 'parameters'"):
            repro.main(["--notebooks", str(first), str(second), "--out", str(tmp_path / "r"), "--seed", "3"])


def test_key_figures_fill_every_placeholder_or_name_the_missing_number(tmp_path):
    repro = _reproduce_module()
    numbers = repro.key_numbers([
        {"notebook": "01_gap", "seconds": 12.34, "numbers": {"kl": {"value": 11.06},
                                                             "share": {"value": 0.981, "low": 0.97, "high": 0.99}}},
        {"notebook": "02_ratio", "seconds": 20.0, "numbers": {"r": {"value": 0.3312}}}])
    assert numbers == {"01_gap/kl": 11.06, "01_gap/share": 0.981, "01_gap/share_low": 0.97, "01_gap/share_high": 0.99,
                       "02_ratio/r": 0.3312, "01_gap/seconds": 12.34, "02_ratio/seconds": 20.0, "total/seconds": 32.3}
    text = repro.render_key_figures("KL {{01_gap/kl:.1f}} nats, {{ 01_gap/share:.0% }} in the low bands, "
                                    "r = {{02_ratio/r:.2f}}; {{total/seconds:.0f}} s", numbers)
    assert text == "KL 11.1 nats, 98% in the low bands, r = 0.33; 32 s"
    timed = repro.key_numbers([{"notebook": "01_gap", "seconds": 12.34, "numbers": {}}], figure_seconds=3.21,
                              wall_seconds=20.06)
    assert timed == {"01_gap/seconds": 12.34, "total/seconds": 12.3, "figures/seconds": 3.2, "total/wall_seconds": 20.1}
    sped = repro.key_numbers([{"notebook": "01_gap", "seconds": 1.0, "numbers": {}}], speed=(20.74, 29.96))
    assert (sped["machine/ms_per_video_step_before"], sped["machine/ms_per_video_step_after"]) == (20.7, 30.0)
    with pytest.raises(KeyError, match="'01_gap/missing'"):
        repro.render_key_figures("{{01_gap/missing:.1f}}", numbers)
    with pytest.raises(ValueError, match="malformed"):
        repro.render_key_figures("{{01_gap kl}}", numbers)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{repro.BEGIN}\nold 1.0\n{repro.END}\n\n## next\n")
    repro.update_readme(readme, "KL {{01_gap/kl:.2f}}\n", numbers)
    assert readme.read_text() == f"# title\n\n{repro.BEGIN}\nKL 11.06\n{repro.END}\n\n## next\n"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        repro.update_readme(readme, "x", numbers)



def test_record_keeps_an_interval_only_whole_and_ordered(tmp_path, monkeypatch):
    from freeinit_lab.viz.report import REPORT_DIR_ENV, record

    monkeypatch.setenv(REPORT_DIR_ENV, str(tmp_path))
    assert record("gain", 0.2, "x", notebook="nb", low=0.1, high=0.3) == 0.2
    record("plain", 1.5, notebook="nb")
    saved = json.loads((tmp_path / "nb.json").read_text())
    assert (saved["gain"]["low"], saved["gain"]["high"]) == (0.1, 0.3) and "low" not in saved["plain"]
    with pytest.raises(ValueError, match="both ends"):
        record("half", 0.2, notebook="nb", low=0.1)
    with pytest.raises(ValueError, match="above high"):
        record("upside_down", 0.2, notebook="nb", low=0.3, high=0.1)


def test_network_speed_is_milliseconds_per_video_step():
    """reproduce.py's machine-speed measure: the default network's time per call divided by the videos in the call,
    in milliseconds, over the timed calls only (the first, warming up, is not counted). A stand-in network that
    advances a stand-in clock by 1 ms per video per call measures 1.0 at any batch; the real network measures a
    positive number."""
    import types

    repro = _reproduce_module()
    clock = [0.0]

    def unet(x, t):
        assert x.shape[1:] == (3, 4, 8, 8) and t.shape == (x.shape[0],)
        clock[0] += 0.001 * x.shape[0]

    fake = types.SimpleNamespace(unet=unet, sample_shape=(3, 4, 8, 8))
    with mock.patch("freeinit_lab.embedded.pipelines.load_default_pipeline", return_value=fake), \
            mock.patch.object(repro.time, "perf_counter", lambda: clock[0]):
        for batch, calls in ((1, 1), (4, 3), (16, 2)):
            assert repro.network_speed(batch=batch, calls=calls) == pytest.approx(1.0)
    assert 0 < repro.network_speed(batch=2, calls=1) < 10_000


def test_readme_key_figures_are_the_recorded_numbers():
    """README.md's key figures are docs/key_figures.md.in filled from docs/key_numbers.json (both written by the
    last `make reproduce`): a number edited by hand in the README, or a template naming a number no notebook
    recorded, fails here."""
    repro = _reproduce_module()
    numbers = json.loads(repro.KEY_NUMBERS.read_text())
    text = repro.README.read_text()
    generated = text.split(repro.BEGIN)[1].split(repro.END)[0].strip("\n")
    assert generated == repro.render_key_figures(repro.KEY_FIGURES_TEMPLATE.read_text(), numbers).strip("\n"), (
        "README.md's key figures differ from docs/key_figures.md.in filled with docs/key_numbers.json: edit the "
        "template, not the README, and run `make reproduce`")
    notebooks = sorted(p.stem for p in (repro.ROOT / "notebooks").glob("[0-9]*.ipynb"))
    timed = sorted(k.split("/")[0] for k in numbers if k.endswith("/seconds") and k.split("/")[0] not in ("total", "figures"))
    assert timed == notebooks  # every notebook ran in that make reproduce
    assert numbers["total/wall_seconds"] >= numbers["total/seconds"] + numbers["figures/seconds"]
    assert 0 < numbers["machine/ms_per_video_step_before"] and 0 < numbers["machine/ms_per_video_step_after"]
