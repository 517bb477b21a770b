"""Figures of the studies (:mod:`freeinit_lab.studies`): FreeInit pass by pass, filters, band SNR per pass, the
cutoff map, initialisation strategies (distance vs cost), the FreeInit decomposition (share explained per
control). Each takes the study's result and returns a ``plotly.graph_objects.Figure``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from freeinit_lab.studies.cutoff_map import nearest_cell
from freeinit_lab.studies.refinement import cumulative_quality
from freeinit_lab.viz.plots import band_colors

__all__ = [
    "iteration_figure",
    "filter_figure",
    "band_snr_iteration_figure",
    "cutoff_map_marker",
    "cutoff_map_figure",
    "pareto_figure",
    "decomposition_figure",
    "data_comparison_figure",
]


def iteration_figure(ds: xr.Dataset, metric: str = "consistency"):
    """Two panels: ``metric`` per FreeInit pass, and ``metric`` against cumulative denoiser evaluations
    (full vs coarse-to-fine), mean ± standard error over videos, with the oracle and data levels as lines."""
    q = cumulative_quality(ds, metric)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per FreeInit pass", "quality per denoiser evaluation"))
    colors = {"full": "#1f77b4", "coarse-to-fine": "#ff7f0e"}
    for s in q.sampling.values.tolist():
        mean, se = q["mean"].sel(sampling=s).values, q["se"].sel(sampling=s).values
        for col, x in ((1, q.iteration.values), (2, q["cumulative_evals"].sel(sampling=s).values)):
            fig.add_trace(go.Scatter(x=x, y=mean, error_y={"type": "data", "array": se}, mode="lines+markers",
                                     name=s, legendgroup=s, showlegend=col == 1, line={"color": colors.get(s)}),
                          row=1, col=col)
    init_name = f"init_{metric}"
    if init_name in ds:
        for src, dash in (("oracle", "dash"), ("data", "dot")):
            if src in ds.source.values:
                level = float(ds[init_name].sel(source=src).mean())
                for col in (1, 2):
                    fig.add_hline(y=level, line_dash=dash, line_color="grey", row=1, col=col,
                                  annotation_text=src if col == 2 else None)
    fig.update_xaxes(title="pass (0 = plain sampling)", row=1, col=1)
    fig.update_xaxes(title="cumulative denoiser evaluations", row=1, col=2)
    fig.update_yaxes(title=ds[metric].attrs.get("long_name", metric), row=1, col=1)
    fig.update_layout(title=f"FreeInit pass by pass ({ds.attrs.get('method')} filter, d_s = {ds.attrs.get('d_s')}, "
                            f"{ds.sizes['video']} videos, mean ± s.e.)", height=420, width=950)
    return fig


def filter_figure(ds: xr.Dataset, metric: str = "consistency"):
    """Bar chart: ``metric`` after one FreeInit iteration per filter, with plain sampling as a reference line."""
    m = ds[f"filter_{metric}"]
    n = m.sizes["video"]
    fig = go.Figure(go.Bar(x=m["filter"].values.tolist(), y=m.mean("video").values,
                           error_y={"type": "data", "array": (m.std("video", ddof=1) / np.sqrt(n)).values}))
    base = float(ds[metric].sel(sampling="full", iteration=0).mean())
    fig.add_hline(y=base, line_dash="dash", annotation_text="plain sampling")
    fig.update_layout(title=f"one FreeInit iteration per filter (d_s = d_t = {ds.attrs.get('d_s')}, same eta)",
                      yaxis_title=m.attrs.get("long_name", metric), height=380, width=650)
    return fig


def band_snr_iteration_figure(ds: xr.Dataset):
    """Band SNR of each pass's initial latent (one line per pass, pass 0 = pure noise is not drawn: ``-inf``) and
    the training ``z_T``'s band SNR of the reference videos (dashed), against the band index."""
    snr = ds["band_snr"]
    labels = [f"{k}: {float(lo):.2f}–{float(hi):.2f}" for k, lo, hi in
              zip(snr.band.values, snr["band_lo"].values, snr["band_hi"].values)] if "band_lo" in snr.coords \
        else [str(k) for k in snr.band.values]
    fig = go.Figure()
    colors = band_colors(snr.sizes["iteration"])
    for n, i in enumerate(snr.iteration.values):  # colour by position: a selection of passes need not start at 0
        y = snr.sel(iteration=i).values
        if not np.isfinite(y).any():
            continue
        fig.add_trace(go.Scatter(x=labels, y=[float(v) if np.isfinite(v) else None for v in y],
                                 mode="lines+markers", name=f"pass {int(i)} initial latent",
                                 line={"color": colors[n]}))
    fig.add_trace(go.Scatter(x=labels, y=ds["training_snr"].values, mode="lines+markers", name="training z_T (data)",
                             line={"color": "black", "dash": "dash"}))
    fig.update_layout(title="band SNR of the initial latent per FreeInit pass vs the training z_T (pass 0: −∞ dB)",
                      xaxis_title="band (normalised frequency radius)", yaxis_title="SNR (dB)", height=420, width=900)
    return fig


def _sorted_cutoff_map(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ascending ``d_s`` and ``d_t`` (a grid given in any order); repeated cut-offs are refused."""
    for dim in ("d_s", "d_t"):
        values = np.asarray(ds[dim].values, dtype=float)
        if np.unique(values).size != values.size:
            raise ValueError(f"the cutoff map repeats {dim} values {values.tolist()}: a cell per cut-off pair is "
                             f"needed to draw it; merge the repeats, e.g. ds.groupby('{dim}').mean()")
    return ds.sortby(["d_s", "d_t"])


def _number(value: float, fmt: str, missing: str) -> str:
    return format(value, fmt) if np.isfinite(value) else missing


def cutoff_map_marker(ds: xr.Dataset, d_s: float, d_t: float, *, method: str | None = None,
                      num_iters: int | None = None, order: float | None = None) -> tuple[dict, str]:
    """Marker position and title of :func:`cutoff_map_figure` for the current ``(d_s, d_t)``.

    Returns ``({"x": [d_t], "y": [d_s]}, title)``; the title names the map's settings and the nearest cell's gain
    ± standard error ("not measured" for a NaN cell), and says so when the settings explored (``method``,
    ``num_iters`` = passes K, Butterworth ``order``) are not the map's.
    """
    a = ds.attrs
    cell = nearest_cell(_sorted_cutoff_map(ds), d_s, d_t)
    head = (f"consistency gain of FreeInit over plain sampling: {a.get('method', '?')}, K={a.get('num_iters', '?')}, "
            f"{a.get('num_inference_steps', '?')} steps, {ds.sizes.get('video', a.get('num_videos', '?'))} videos")
    if np.isfinite(cell["gain"]):
        numbers = f"{cell['gain']:+.4f} ± {_number(cell['gain_se'], '.4f', 'n/a (no standard error)')}"
    else:
        numbers = "not measured (NaN)"
    line = (f"marker d_s={d_s:.2f}, d_t={d_t:.2f} · nearest cell d_s={cell['d_s']:.2f}, d_t={cell['d_t']:.2f}: "
            f"{numbers}")
    grid = _sorted_cutoff_map(ds)
    outside = [f"{name} {float(grid[name].min()):g}–{float(grid[name].max()):g}" for name, v in (("d_s", d_s), ("d_t", d_t))
               if not float(grid[name].min()) - 1e-9 <= float(v) <= float(grid[name].max()) + 1e-9]
    if outside:  # the slider reaches past the grid: the nearest cell is an edge, not a measurement of this setting
        line += f" (outside the map's {', '.join(outside)}: the edge cell is not this setting's gain)"
    theirs, ours = [], []
    map_method = a.get("method")
    if method is not None and map_method is not None and method != map_method:
        theirs.append(str(map_method))
        ours.append(str(method))
    if (order is not None and a.get("order") is not None and (method or map_method) == "butterworth" == map_method
            and float(order) != float(a["order"])):
        theirs.append(f"order {float(a['order']):g}")
        ours.append(f"order {float(order):g}")
    if num_iters is not None and a.get("num_iters") is not None and int(num_iters) != int(a["num_iters"]):
        theirs.append(f"K={int(a['num_iters'])}")
        ours.append(f"K={int(num_iters)}")
    if theirs:
        line += f" (map measured with {', '.join(theirs)}, not {', '.join(ours)})"
    return {"x": [float(d_t)], "y": [float(d_s)]}, f"{head}<br><sup>{line}</sup>"


def cutoff_map_figure(ds: xr.Dataset | None, d_s: float = 0.25, d_t: float = 0.25, *, message: str | None = None):
    """Heat map of a cutoff map's ``gain`` over ``(d_t, d_s)`` with a marker at ``(d_s, d_t)``.

    Trace 0 is the heat map (``x = d_t``, ``y = d_s``, both ascending whatever the map's order, diverging colours
    centred on 0, each cell labelled with its gain, a NaN cell left blank and labelled "not measured"; hover adds
    the standard error), trace 1 the marker. With ``ds=None`` the figure has no traces and one annotation,
    ``message`` (default: how to compute the map).

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        For a map that repeats a ``d_s`` or ``d_t`` value.
    """
    fig = go.Figure()
    fig.update_layout(height=420, width=560, margin=dict(l=60, r=20, t=80, b=50))
    if ds is None:
        text = message or ("no precomputed consistency-gain map; compute it with "
                           "<code>python scripts/precompute_cutoff_map.py</code>")
        fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                           font=dict(size=13), align="center")
        fig.update_layout(title=dict(text="consistency gain of FreeInit over plain sampling: no map"),
                          xaxis=dict(visible=False), yaxis=dict(visible=False), height=220)
        return fig
    ds = _sorted_cutoff_map(ds)
    gain = ds["gain"].transpose("d_s", "d_t").values.astype(float)
    se = ds["gain_se"].transpose("d_s", "d_t").values.astype(float)
    x, y = ds["d_t"].values.astype(float), ds["d_s"].values.astype(float)
    text = np.vectorize(lambda v: _number(v, "+.3f", "not measured"), otypes=[object])(gain)
    hover = np.vectorize(lambda g, e: (f"gain {g:+.4f} ± {_number(e, '.4f', 'n/a')}" if np.isfinite(g)
                                       else "not measured (NaN)"), otypes=[object])(gain, se)
    fig.add_trace(go.Heatmap(
        z=gain, x=x, y=y, text=text, customdata=hover, colorscale="RdBu", zmid=0.0,
        texttemplate="%{text}", colorbar=dict(title="gain"),
        hovertemplate="d_s=%{y:.2f}, d_t=%{x:.2f}<br>%{customdata}<extra></extra>",
        name="gain",
    ))
    marker, title = cutoff_map_marker(ds, d_s, d_t)
    fig.add_trace(go.Scatter(
        x=marker["x"], y=marker["y"], mode="markers", name="current (d_s, d_t)", hoverinfo="skip",
        marker=dict(symbol="circle-open", size=18, color="black", line=dict(width=3)), showlegend=False,
    ))
    lo = lambda v: float(v.min() - (np.diff(v).min() / 2 if v.size > 1 else 0.05))  # noqa: E731
    hi = lambda v: float(v.max() + (np.diff(v).min() / 2 if v.size > 1 else 0.05))  # noqa: E731
    fig.update_layout(
        title=dict(text=title, font=dict(size=13)),
        xaxis=dict(title="temporal cut-off d_t", range=[min(lo(x), 0.0), max(hi(x), 1.05)]),
        yaxis=dict(title="spatial cut-off d_s", range=[min(lo(y), 0.0), max(hi(y), 1.05)]),
    )
    return fig


def pareto_figure(tables: dict[str, Any], *, title: str = "distance to the data vs cost"):
    """Plotly scatter of ``distance`` (± ``distance_se``) against ``evals`` for one or more summary tables.

    Parameters
    ----------
    tables
        ``{model name: summarize_strategies(...) table}``; the ``"data"`` row is left out. Points on the lower-left
        frontier (no other strategy both cheaper and closer) are drawn larger and joined by a line.
    """
    fig = go.Figure()
    for model, table in tables.items():
        t = table.drop(index="data", errors="ignore").sort_values(["evals", "distance"])
        best, frontier = math.inf, []
        for label, r in t.iterrows():
            if r["distance"] < best:
                best = r["distance"]
                frontier.append(label)
        err = t["distance_se"].fillna(0) if "distance_se" in t else None
        fig.add_trace(go.Scatter(
            x=t["evals"], y=t["distance"], mode="markers+text", name=model, text=list(t.index),
            textposition="top center", error_y=dict(type="data", array=err) if err is not None else None,
            marker=dict(size=[14 if label in frontier else 8 for label in t.index]),
            hovertemplate="%{text}<br>evals %{x}<br>distance %{y:.3f}<extra>" + model + "</extra>",
        ))
        fig.add_trace(go.Scatter(x=t.loc[frontier, "evals"], y=t.loc[frontier, "distance"], mode="lines",
                                 showlegend=False, line=dict(dash="dot"), hoverinfo="skip"))
    fig.update_layout(title=title, xaxis_title="denoiser evaluations per video",
                      yaxis_title="distance to the data (data s.d. units)", template="plotly_white")
    return fig


def decomposition_figure(ds: xr.Dataset, metrics: Sequence[str] | None = None, *, title: str | None = None):
    """Plotly grouped bars: each control's share of FreeInit's effect per metric, with its bootstrap interval.

    0 = the control changes the metric no more than plain sampling; 1 = as much as FreeInit.
    """
    metrics = list(ds.metric.values) if metrics is None else list(metrics)
    fig = go.Figure()
    for c in ds.control.values.tolist():
        y = ds.explained.sel(control=c, metric=metrics).values
        lo = ds.explained_low.sel(control=c, metric=metrics).values
        hi = ds.explained_high.sel(control=c, metric=metrics).values
        fig.add_trace(go.Bar(
            x=metrics, y=y, name=c,
            error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo),
            hovertemplate="%{x}<br>" + c + ": %{y:.2f}<extra></extra>",
        ))
    for level in (0.0, 1.0):
        fig.add_hline(y=level, line_dash="dot", line_color="grey")
    conf = ds.attrs.get("confidence", 0.95)
    fig.update_layout(
        barmode="group", template="plotly_white",
        title=title or (f"share of FreeInit's effect each control reproduces ({ds.attrs.get('pipeline_class', '')}, "
                        f"{ds.sizes['video']} paired videos, {conf:.0%} paired bootstrap)"),
        xaxis_title="metric", yaxis_title="(control − plain) / (FreeInit − plain)",
    )
    return fig


def data_comparison_figure(judged: dict[str, xr.Dataset], *, arms: Sequence[str] | None = None,
                           title: str = "band power against the data"):
    """Plotly grid: per model (rows) spatial and temporal band power of each arm vs the data, dB, with intervals.

    Parameters
    ----------
    judged
        ``{model name: freeinit_lab.analysis.fidelity.judge_against_data(...)}``.
    arms
        Arms to draw (default all of the first model's).
    """
    models = list(judged)
    fig = make_subplots(rows=len(models), cols=2, shared_xaxes=False, vertical_spacing=0.16, horizontal_spacing=0.12,
                        subplot_titles=[f"{m}: {kind}" for m in models for kind in ("spatial", "temporal")])
    arms = list(judged[models[0]].arm.values) if arms is None else list(arms)
    palette = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF"]
    for r, m in enumerate(models, start=1):
        j = judged[m]
        xs = [f"{lo:.3g}–{hi:.3g}" for lo, hi in zip(j.spatial_low_edge.values, j.spatial_high_edge.values)]
        for i, a in enumerate(arms):
            if a not in j.arm.values:
                continue
            color = palette[i % len(palette)]
            for c, (var, x) in enumerate((("spatial_db", xs), ("temporal_db", j.temporal_freq.values)), start=1):
                y = j[var].sel(arm=a).values
                lo, hi = j[var + "_low"].sel(arm=a).values, j[var + "_high"].sel(arm=a).values
                fig.add_trace(go.Scatter(
                    x=x, y=y, mode="lines+markers", name=a, legendgroup=a, showlegend=(r == 1 and c == 1),
                    line=dict(color=color), error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo),
                    hovertemplate=a + "<br>%{x}: %{y:+.2f} dB<extra>" + m + "</extra>"), row=r, col=c)
        for c in (1, 2):
            fig.add_hline(y=0.0, line_dash="dot", line_color="grey", row=r, col=c)
            fig.update_yaxes(title_text="dB vs data", row=r, col=c)
        fig.update_xaxes(title_text="spatial band (cycles/pixel, DC first)", row=r, col=1)
        fig.update_xaxes(title_text="temporal frequency (cycles/frame)", row=r, col=2)
    conf = judged[models[0]].attrs.get("confidence", 0.99)
    fig.update_layout(template="plotly_white", title=f"{title} ({conf:.0%} bootstrap intervals)")
    return fig
