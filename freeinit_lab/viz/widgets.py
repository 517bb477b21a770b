"""The cutoff explorer: ipywidgets controls driving plotly FigureWidgets, testable without a browser.

Every control is an attribute, so a test sets ``explorer.d_s.value = 0.5`` and reads ``explorer.mask_figure``
or ``explorer.summary.value``; the notebook only builds the explorer and displays ``explorer.widget``.
The precomputed ``(d_s, d_t)`` heat map of FreeInit's consistency gain (:mod:`freeinit_lab.cutoff_map`) is read
from ``data/cutoff_map.nc`` when it exists; without it the heat-map figure says how to compute it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from freeinit_lab._checks import require_int, require_seed
from freeinit_lab._extras import require
from freeinit_lab.studies.cutoff_map import DEFAULT_CUTOFF_MAP_PATH, load_cutoff_map, map_consistency
from freeinit_lab.viz.figures import cutoff_map_figure, cutoff_map_marker
from freeinit_lab.viz.plots import band_mix_figure, mask_figure, mask_slices, video_figure
from freeinit_lab.core.snr import reinit_band_composition
from freeinit_lab.core.spectral import FILTER_METHODS, lowpass_filter
from freeinit_lab.hooks.layouts import has_scheduler

__all__ = ["CutoffExplorer"]

widgets = require("ipywidgets", "the cutoff explorer (freeinit_lab.widgets)")


class CutoffExplorer:
    """Explore FreeInit's low-pass filter: method, ``d_s``, ``d_t``, ``order`` and iterations.

    Parameters
    ----------
    shape
        ``(frame, height, width)`` of the latent the mask is built for (the embedded default's by default).
    num_bands
        Frequency bands of the composition chart.
    pipeline
        A pipeline for the "run FreeInit" button, or a zero-argument callable returning one (called lazily on the
        first run). Default: :func:`freeinit_lab.load_default_pipeline`.
    run_kwargs
        Extra arguments for the pipeline call (none by default: the pipeline's stored sampler). The settings the
        controls and ``seed`` set (``method``, ``d_s``, ``d_t``, ``order``, ``num_iters``, ``generator``) and an
        ``output_type`` other than ``"latent"`` are refused here, not when a run starts.
    seed
        Seed of every run, an integer in ``[0, 2**64 - 1]``: a fixed seed makes the baseline and FreeInit comparable
        and reruns identical.
    cutoff_map
        The precomputed consistency-gain map (:func:`freeinit_lab.cutoff_map.measure_cutoff_map`): a path to its
        NetCDF file (default ``data/cutoff_map.nc``, written by ``scripts/precompute_cutoff_map.py``), the dataset
        itself, or None for none. A missing or unreadable file, an object that is not such a dataset, or a map
        measured on another latent grid (its ``latent_shape`` attribute) never raises: the heat map shows why and
        how to compute one instead, as does one that repeats a cut-off value; one measured in any order is shown
        (and looked up) with ascending ``d_s`` and ``d_t``. A map that does not record its grid is shown with a
        note saying so, and the heat map's title says when the explored method, order or ``num_iters`` is not the
        map's.

    Attributes
    ----------
    method, d_s, d_t, order, num_iters, run_button
        The controls. ``num_iters`` is FreeInit's number of passes ``K`` including the plain first one (as
        :func:`freeinit_lab.freeinit` takes it), so at least 2: ``K=1`` would be plain sampling.
    mask_figure, band_figure, heatmap_figure
        ``plotly.graph_objects.FigureWidget``. ``heatmap_figure`` shows the precomputed gain map (trace 0, a heat
        map over ``x = d_t``, ``y = d_s``) with a marker (trace 1) at the current ``(d_s, d_t)``; its title gives
        the nearest grid cell's gain. Without a map it has no traces and one annotation saying how to compute it.
    cutoff_map, cutoff_map_message
        The loaded map (``xarray.Dataset``) or None, and why there is none (None when there is a map).
    video_output
        ``ipywidgets.Output`` where a run shows its videos (an animated plotly figure).
    summary, metrics
        ``ipywidgets.HTML``: numbers of the current mask (kept bins, mean H, mix variance) and of the last run.
    widget
        The whole explorer, to display.

    Each part carries a CSS class (``DOM_CLASSES``: ``freeinit-explorer`` on the whole, ``freeinit-d_s`` on the
    ``d_s`` slider, ``freeinit-summary`` on the numbers, ...) so that a browser test or a stylesheet can find it in
    the page without relying on labels or layout.
    """

    #: run settings the controls and ``seed`` own (refused in ``run_kwargs``)
    _CONTROLLED = frozenset({"method", "d_s", "d_t", "order", "num_iters", "generator"})

    #: attribute name -> CSS class of its element in the rendered page ("widget" is the whole explorer)
    DOM_CLASSES = {
        "widget": "freeinit-explorer",
        "method": "freeinit-method",
        "d_s": "freeinit-d_s",
        "d_t": "freeinit-d_t",
        "order": "freeinit-order",
        "num_iters": "freeinit-num_iters",
        "run_button": "freeinit-run",
        "summary": "freeinit-summary",
        "metrics": "freeinit-metrics",
        "mask_figure": "freeinit-mask-figure",
        "band_figure": "freeinit-band-figure",
        "video_output": "freeinit-video",
        "heatmap_figure": "freeinit-heatmap",
    }

    def __init__(
        self,
        shape: tuple[int, int, int] = (16, 32, 32),
        *,
        num_bands: int = 6,
        pipeline: Any | Callable[[], Any] | None = None,
        run_kwargs: dict | None = None,
        seed: int = 0,
        cutoff_map: str | os.PathLike | Any | None = DEFAULT_CUTOFF_MAP_PATH,
    ) -> None:
        if len(shape) != 3:
            raise ValueError(f"shape must be (frame, height, width); got {shape}")
        clash = sorted(set(run_kwargs or {}) & self._CONTROLLED)
        if clash:
            raise ValueError(f"run_kwargs {clash} are set by the explorer's controls and seed; set the controls "
                             f"instead (explorer.d_s.value = 0.5, ...) or seed=, and leave them out of run_kwargs")
        if (run_kwargs or {}).get("output_type", "latent") != "latent":
            raise ValueError(f"run_kwargs output_type={run_kwargs['output_type']!r}: the explorer decodes and scores "
                             "the latents itself, so it samples with output_type='latent'; leave output_type out")
        # int() read a 16.5-frame grid as 16 (and then showed a map measured on 16 frames as its own)
        self.shape = tuple(require_int(f"shape[{i}]", s, why=" (the latent's frame, height, width)")
                           for i, s in enumerate(shape))
        self.num_bands = require_int("num_bands", num_bands, why=" (frequency bands of the composition chart)")
        self._pipeline = pipeline
        self.run_kwargs = dict(run_kwargs or {})
        self.seed = require_seed(seed)  # refused now (-1, 0.5, True), not read as another seed by the runs
        self.last_run: dict | None = None

        style = {"description_width": "80px"}
        self.method = widgets.Dropdown(options=list(FILTER_METHODS), value="butterworth", description="method", style=style)
        self.d_s = widgets.FloatSlider(value=0.25, min=0.05, max=1.0, step=0.05, description="d_s", style=style, continuous_update=False)
        self.d_t = widgets.FloatSlider(value=0.25, min=0.05, max=1.0, step=0.05, description="d_t", style=style, continuous_update=False)
        self.order = widgets.IntSlider(value=4, min=1, max=8, description="order", style=style, continuous_update=False)
        self.num_iters = widgets.IntSlider(value=3, min=2, max=5, description="passes K", style=style,
                                           continuous_update=False)  # K=1 would be plain sampling
        self.run_button = widgets.Button(description="run FreeInit", button_style="primary", icon="play")
        self.summary = widgets.HTML()
        self.metrics = widgets.HTML(value="<i>press “run FreeInit” to sample the default model with these settings</i>")

        self.mask_figure = go.FigureWidget(mask_figure(self.mask()))
        self.band_figure = go.FigureWidget(band_mix_figure(reinit_band_composition(self.mask(), self.num_bands)))
        self.cutoff_map, self.cutoff_map_message = self._load_cutoff_map(cutoff_map, self.shape)
        self.heatmap_figure = go.FigureWidget(cutoff_map_figure(self.cutoff_map, message=self.cutoff_map_message))
        self.video_output = widgets.Output()  # FigureWidget cannot animate: the videos are shown as a Figure here
        self.update()

        for control in (self.method, self.d_s, self.d_t, self.order):
            control.observe(self._on_change, names="value")
        self.num_iters.observe(lambda _change: self.update_heatmap(), names="value")  # the map's K vs the runs'
        self.run_button.on_click(lambda _button: self.run())

        controls = widgets.VBox([self.method, self.d_s, self.d_t, self.order, self.num_iters, self.run_button])
        self.widget = widgets.VBox(
            [
                widgets.HBox([controls, self.summary]),
                self.mask_figure,
                self.band_figure,
                self.heatmap_figure,
                self.metrics,
                self.video_output,
            ]
        )
        for name, css_class in self.DOM_CLASSES.items():
            getattr(self, name).add_class(css_class)

    # -- state ----------------------------------------------------------------------------------------------------
    def settings(self) -> dict:
        """The current FreeInit filter settings, named as :func:`freeinit_lab.lowpass_filter` takes them."""
        return {
            "method": self.method.value,
            "d_s": float(self.d_s.value),
            "d_t": float(self.d_t.value),
            "order": int(self.order.value),
        }

    def mask(self) -> torch.Tensor:
        """The current mask ``H`` (FFT order, shape ``self.shape``)."""
        return lowpass_filter(self.shape, **self.settings())

    def _on_change(self, _change: dict) -> None:
        self.update()

    @staticmethod
    def _load_cutoff_map(source: Any, shape: tuple[int, int, int] | None = None) -> tuple[Any, str | None]:
        """``(map, None)``, or ``(None, message)`` saying why there is no map and how to compute one. Never raises."""
        how = "compute it with <code>python scripts/precompute_cutoff_map.py</code> (a sweep of 9,900 video-steps: 44 minutes measured on a loaded 2-core machine, resumable)"
        if source is None:
            return None, f"no consistency-gain map was given; {how}"
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                ds = load_cutoff_map(path)
            except FileNotFoundError:
                return None, f"no precomputed consistency-gain map: {path.name} not found in {path.parent};<br>{how}"
            except ImportError as err:  # the file is fine: the library that reads it is missing
                return None, f"could not read the consistency-gain map {path}: {err}"
            except Exception as err:  # a damaged or foreign file must not break the explorer
                return None, f"could not read the consistency-gain map {path}: {type(err).__name__}: {err};<br>re{how}"
        else:
            ds = source
        try:
            import xarray as xr

            if not isinstance(ds, xr.Dataset):
                return None, (
                    f"cutoff_map is a {type(ds).__name__}, not a cutoff map: pass the xarray.Dataset of "
                    "measure_cutoff_map / load_cutoff_map (gain and gain_se over d_s, d_t), or its NetCDF path"
                )
            missing = [v for v in ("gain", "gain_se") if v not in ds.variables]
            if missing or set(ds["gain"].dims) != {"d_s", "d_t"} or set(ds["gain_se"].dims) != {"d_s", "d_t"}:
                return None, (
                    f"cutoff_map is not a cutoff map (needs gain and gain_se over (d_s, d_t); missing {missing}); "
                    f"pass what measure_cutoff_map or load_cutoff_map returns, or {how}"
                )
            repeated = [d for d in ("d_s", "d_t") if ds.indexes[d].has_duplicates]
            if repeated:
                values = ", ".join(f"{d}={ds[d].values.tolist()}" for d in repeated)
                return None, (f"the cutoff map repeats cut-off values ({values}): one cell per cut-off pair is "
                              f"needed to show it; merge the repeats, or {how}")
            ds = ds.sortby(["d_s", "d_t"])  # a grid measured in any order is shown (and looked up) ascending
            grid = ds.attrs.get("latent_shape")
            if grid is not None and shape is not None:
                grid = tuple(int(v) for v in np.atleast_1d(grid))[-3:]
                if grid != tuple(shape):
                    fmt = lambda g: "×".join(str(v) for v in g)  # noqa: E731
                    return None, (
                        f"the consistency-gain map was measured on a {fmt(grid)} latent grid (frame×height×width), "
                        f"but this explorer shows a {fmt(shape)} grid; a cut-off acts differently on another grid, "
                        f"so the map is not shown.<br>Build the explorer with shape={grid}, or measure a map for "
                        f"this grid with freeinit_lab.cutoff_map.measure_cutoff_map"
                    )
            return ds, None
        except Exception as err:  # noqa: BLE001 - documented never to raise
            return None, f"could not use cutoff_map: {type(err).__name__}: {err}; {how}"

    def update_heatmap(self) -> None:
        """Move the heat map's marker to the current ``(d_s, d_t)`` and retitle it (nothing without a map)."""
        if self.cutoff_map is None:
            return
        s = self.settings()
        marker, title = cutoff_map_marker(self.cutoff_map, s["d_s"], s["d_t"], method=s["method"],
                                          num_iters=int(self.num_iters.value), order=s["order"])
        if self.cutoff_map.attrs.get("latent_shape") is None:
            title += "<br><sup>(the map does not record its latent grid: it may belong to another one)</sup>"
        with self.heatmap_figure.batch_update():
            self.heatmap_figure.data[1].x = marker["x"]
            self.heatmap_figure.data[1].y = marker["y"]
            self.heatmap_figure.layout.title.text = title

    def update(self) -> None:
        """Recompute the mask, its figures and the summary from the controls (called on every change)."""
        s = self.settings()
        self.order.disabled = s["method"] != "butterworth"
        mask = self.mask()
        slices = mask_slices(mask)
        composition = reinit_band_composition(mask, self.num_bands)
        with self.mask_figure.batch_update():
            for trace, data in zip(self.mask_figure.data, slices.values()):
                trace.z = data
            order = f", order {s['order']}" if s["method"] == "butterworth" else ""
            self.mask_figure.layout.title.text = f"low-pass mask H: {s['method']}, d_s={s['d_s']:.2f}, d_t={s['d_t']:.2f}{order}"
        with self.band_figure.batch_update():
            self.band_figure.data[0].y = composition["from_diffused"].values
            self.band_figure.data[1].y = composition["from_noise"].values
            self.band_figure.data[2].y = composition["mix_variance"].values
        kept = float((mask >= 0.5).double().mean()) * 100
        mean_h = float(mask.double().mean())
        min_var = float(composition["mix_variance"].min())
        self.summary.value = (
            "<div style='font-family:monospace;padding-left:1em'>"
            f"<b>{s['method']}</b> d_s={s['d_s']:.2f} d_t={s['d_t']:.2f}<br>"
            f"kept bins: {kept:.2f} %<br>"
            f"mean H: {mean_h:.4f}<br>"
            f"lowest band variance of the mix: {min_var:.3f}<br>"
            f"latent grid: {self.shape[0]}×{self.shape[1]}×{self.shape[2]}"
            "</div>"
        )
        if hasattr(self, "heatmap_figure"):
            self.update_heatmap()

    # -- running ----------------------------------------------------------------------------------------------------
    def _get_pipeline(self) -> Any:
        if self._pipeline is None:
            from freeinit_lab.embedded.pipelines import load_default_pipeline  # the embedded default model

            self._pipeline = load_default_pipeline()
        elif callable(self._pipeline) and not has_scheduler(self._pipeline):  # a factory, not a pipeline
            self._pipeline = self._pipeline()
        return self._pipeline

    def run(self) -> dict:
        """Sample the pipeline with plain sampling and with FreeInit (same seed) and show both with metrics."""
        from freeinit_lab.engine.loop import freeinit

        num_iters = int(self.num_iters.value)
        if num_iters < 2:  # before loading or sampling anything
            raise ValueError(f"num_iters={num_iters} passes is plain sampling only; FreeInit needs K >= 2 "
                             "(the plain pass and at least one reinitialised pass)")
        pipe = self._get_pipeline()
        self.run_button.disabled = True
        self.metrics.value = "<i>sampling…</i>"
        try:
            kwargs = {"output_type": "latent", **self.run_kwargs}
            refined = freeinit(
                pipe, num_iters=num_iters, generator=torch.Generator().manual_seed(self.seed),
                **self.settings(), **kwargs,
            )  # its pass 0 is plain sampling from the same seed
            latents = {"plain sampling": refined.iterations[0].clean_latent[:1],  # K - 1 reinitialisations:
                       f"FreeInit ×{num_iters - 1} (K={num_iters})": refined.latents[:1]}
            # the heat map's score: consecutive-frame cosine of colour-centred pixels (decoded from model space)
            scores = {name: float(map_consistency(pipe, v)[0]) for name, v in latents.items()}
            norm = getattr(pipe, "normalizer", None)
            videos = {name: (norm.decode(v.float()) if norm is not None else v.float())[0].clamp(-1, 1)
                      for name, v in latents.items()}
            fig = video_figure(videos, title="same seed: plain sampling vs FreeInit (pixels)", value_range=(-1, 1))
            self.video_output.clear_output(wait=True)
            with self.video_output:
                fig.show()
            self.metrics.value = "<div style='font-family:monospace'>temporal consistency (consecutive-frame cosine): " + ", ".join(
                f"{name}: {value:.4f}" for name, value in scores.items()
            ) + "</div>"
            self.last_run = {
                "scores": scores, "settings": self.settings(), "num_iters": int(self.num_iters.value), "figure": fig,
            }
            return self.last_run
        finally:
            self.run_button.disabled = False
