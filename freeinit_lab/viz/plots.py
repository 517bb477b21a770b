"""Plotly figures that title and label themselves from the data they are given.

Each function takes the labelled results of the library (xarray with ``name``/``long_name``/``units``) or plain
tensors with documented dims, and returns a ``plotly.graph_objects.Figure``. ``-inf`` dB (no signal) cannot be
drawn on a log axis; it is shown as a gap and named in the hover text and the legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
import xarray as xr
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

__all__ = [
    "band_colors",
    "band_snr_figure",
    "band_trajectory_figure",
    "gap_figure",
    "mask_slices",
    "mask_figure",
    "band_mix_figure",
    "spectra_figure",
    "video_figure",
    "frame_strip_figure",
]


def band_colors(num_bands: int) -> list[str]:
    """Colours for bands ordered low → high frequency (Viridis, dark = low)."""
    if num_bands == 1:
        return sample_colorscale("Viridis", [0.0])
    return sample_colorscale("Viridis", list(np.linspace(0, 0.9, num_bands)))


def _band_label(da: xr.DataArray, k: int) -> str:
    if "band_lo" in da.coords:
        return f"band {k} ({float(da.band_lo[k]):.3f}–{float(da.band_hi[k]):.3f})"
    return f"band {k}"


def _finite(values: np.ndarray) -> list:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def band_snr_figure(snr: xr.DataArray, title: str | None = None) -> go.Figure:
    """SNR(t) of every frequency band, coloured low → high (output of :func:`freeinit_lab.band_snr`)."""
    fig = go.Figure()
    colors = band_colors(snr.sizes["band"])
    for k in range(snr.sizes["band"]):
        line = snr.isel(band=k)
        fig.add_trace(
            go.Scatter(
                x=snr.timestep.values, y=_finite(line.values), mode="lines", name=_band_label(snr, k),
                line={"color": colors[k]},
            )
        )
    fig.add_hline(y=0, line_dash="dot", line_color="grey", annotation_text="0 dB", annotation_position="bottom left")
    fig.update_layout(
        title=title or f"{snr.attrs.get('long_name', 'band SNR')} — {snr.attrs.get('scheduler_class', '')}",
        xaxis_title="training timestep t",
        yaxis_title=f"SNR ({snr.attrs.get('units', 'dB')})",
        legend_title="frequency band (normalised radius)",
        template="plotly_white",
    )
    return fig


def band_trajectory_figure(traj: xr.DataArray, dim: str = "step", log_y: bool | None = None,
                           title: str | None = None) -> go.Figure:
    """One line per frequency band along ``dim`` (e.g. band power per denoising step), coloured low → high.

    ``traj`` has dims ``band`` and ``dim``; every other dim (batch, channel, …) is averaged over, ignoring NaN,
    except ``iteration``: the FreeInit passes of a record each get their own lines (dashed after pass 0), since a
    mean over passes would mix plain sampling with the refined passes, and differently at steps a coarse pass did
    not run (a single pass is drawn as such). Band-power-mode probe records plot directly:
    ``band_trajectory_figure(probe.to_xarray().x0_pred)``; full-mode ones through
    :func:`freeinit_lab.analysis.band_power_trajectory`.

    ``log_y`` defaults to a log axis for positive data (band power) and a linear one otherwise; data in dB
    (``units`` attr) or with values ≤ 0 is refused on a log axis, which could not draw them.
    """
    if "band" not in traj.dims or dim not in traj.dims:
        raise ValueError(f"expected an array with dims 'band' and {dim!r}, got {traj.dims}; for a full-mode record "
                         "pass freeinit_lab.band_power_trajectory(record, var) instead")
    passes = "iteration" if dim != "iteration" and traj.sizes.get("iteration", 1) > 1 else None
    other = [d for d in traj.dims if d not in ("band", dim, passes)]
    mean = traj.mean(other, skipna=True) if other else traj
    values = np.asarray(mean.values, dtype=float)
    units = str(traj.attrs.get("units", ""))
    positive = bool(np.all(values[np.isfinite(values)] > 0))
    if log_y is None:
        log_y = positive and units != "dB"
    elif log_y and (units == "dB" or not positive):
        why = "is in dB" if units == "dB" else "has values <= 0"
        raise ValueError(f"{traj.name or 'the trajectory'} {why}, which a log axis cannot draw; pass log_y=False "
                         "(or leave log_y at None to choose from the data)")
    x = traj[dim].values if dim in traj.coords else np.arange(traj.sizes[dim])
    fig = go.Figure()
    colors = band_colors(traj.sizes["band"])
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    for i in range(traj.sizes[passes]) if passes else [0]:
        line = mean.isel({passes: i}) if passes else mean  # pass 0 (plain) solid, later passes dashed
        label = "" if passes is None else f", pass {_coord_value(traj, passes, i)}"
        for k in range(traj.sizes["band"]):
            fig.add_trace(go.Scatter(
                x=x, y=_finite(line.isel(band=k).transpose(dim).values), mode="lines+markers",
                name=_band_label(traj, k) + label, legendgroup=label or None,
                line={"color": colors[k], "dash": dashes[0] if not i else dashes[1 + (i - 1) % 4]},
            ))
    fig.update_layout(
        title=title or traj.attrs.get("long_name", traj.name or "band trajectory"),
        xaxis_title=dim, yaxis_title=units, yaxis_type="log" if log_y else "linear",
        legend_title="frequency band (normalised radius)", template="plotly_white",
    )
    return fig


def _coord_value(da: xr.DataArray, dim: str, i: int):
    return da[dim].values[i].item() if dim in da.coords else i


def gap_figure(gaps: Mapping[str, xr.DataArray] | xr.DataArray, floor_db: float = -100.0) -> go.Figure:
    """Band SNR at ``T``: training ``z_T`` per schedule vs inference (no signal), as grouped bars.

    ``-inf`` dB is drawn at ``floor_db`` with a hatched pattern and "no signal (−inf dB)" in the hover text.
    """
    if isinstance(gaps, xr.DataArray):
        gaps = {gaps.attrs.get("scheduler_class", "training z_T"): gaps}
    fig = go.Figure()
    first = next(iter(gaps.values()))
    bands = [_band_label(first, k) for k in range(first.sizes["band"])]
    series = {name: g.sel(source="training z_T").values for name, g in gaps.items()}
    series["inference z_T (pure noise)"] = first.sel(source="inference z_T").values
    for name, values in series.items():
        values = np.asarray(values, dtype=float)
        shown = np.where(np.isfinite(values), values, floor_db)
        text = ["no signal (−inf dB)" if not np.isfinite(v) else f"{v:.1f} dB" for v in values]
        fig.add_trace(
            go.Bar(
                x=bands, y=shown - floor_db, base=floor_db, name=name, hovertext=text,
                marker_pattern_shape=["/" if not np.isfinite(v) else "" for v in values],
            )
        )
    fig.update_layout(
        barmode="group",
        title="The initialization gap at the last training step T, band by band",
        yaxis_title="band SNR at T (dB)",
        xaxis_title="frequency band (low → high)",
        template="plotly_white",
    )
    return fig


def mask_slices(mask: torch.Tensor) -> dict[str, np.ndarray]:
    """Three slices through the zero frequency of a (…, F, H, W) FFT-order mask, fftshift-ed for display."""
    core = mask.reshape(-1, *mask.shape[-3:])[0].detach().cpu().double()
    shifted = torch.fft.fftshift(core, dim=(-3, -2, -1)).numpy()
    f, h, w = shifted.shape
    return {
        "height × width (f_t = 0)": shifted[f // 2],
        "frame × width (f_h = 0)": shifted[:, h // 2, :],
        "frame × height (f_w = 0)": shifted[:, :, w // 2],
    }


def _axis(n: int) -> np.ndarray:
    return np.fft.fftshift(np.fft.fftfreq(n)) * 2


def mask_figure(mask: torch.Tensor, title: str = "low-pass mask H") -> go.Figure:
    """Heat maps of the three central slices of a mask (normalised frequency axes, DC in the centre)."""
    slices = mask_slices(mask)
    f, h, w = mask.shape[-3:]
    axes = [(_axis(w), _axis(h)), (_axis(w), _axis(f)), (_axis(h), _axis(f))]
    fig = make_subplots(rows=1, cols=3, subplot_titles=list(slices))
    for i, (name, data) in enumerate(slices.items()):
        x, y = axes[i]
        fig.add_trace(
            go.Heatmap(z=data, x=x, y=y, zmin=0, zmax=1, colorscale="Viridis", showscale=i == 2, name=name),
            row=1, col=i + 1,
        )
    fig.update_layout(title=title, template="plotly_white", height=330, margin={"t": 70, "b": 40})
    return fig


def band_mix_figure(composition: xr.Dataset, title: str = "where each band of z'_T comes from") -> go.Figure:
    """Stacked bars: share of each band's power from the diffused latent vs fresh noise, and the mix variance.

    ``composition`` is :func:`freeinit_lab.widgets.band_composition`'s output.
    """
    fig = go.Figure()
    labels = [_band_label(composition, k) for k in range(composition.sizes["band"])]
    fig.add_trace(go.Bar(x=labels, y=composition["from_diffused"].values, name="from diffused z_T (low-pass)"))
    fig.add_trace(go.Bar(x=labels, y=composition["from_noise"].values, name="from fresh noise (high-pass)"))
    fig.add_trace(
        go.Scatter(
            x=labels, y=composition["mix_variance"].values, name="variance of the mix (white input)",
            mode="lines+markers", line={"color": "black", "dash": "dot"},
        )
    )
    fig.update_layout(
        barmode="stack", title=title, yaxis_title="share of band power", yaxis_range=[0, 1.05],
        template="plotly_white", height=330, margin={"t": 60, "b": 40},
    )
    return fig


def spectra_figure(
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, xaxis_title: str, log_y: bool = True
) -> go.Figure:
    """Lines of marginal spectra, e.g. ``{"training z_T": (freqs, power), ...}``."""
    fig = go.Figure()
    for name, (x, y) in spectra.items():
        x, y = np.asarray(x), np.asarray(y)
        order = np.argsort(x)
        fig.add_trace(go.Scatter(x=x[order], y=y[order], mode="lines+markers", name=name))
    fig.update_layout(
        title=title, xaxis_title=xaxis_title, yaxis_title="power per bin (× unit white noise)",
        yaxis_type="log" if log_y else "linear", template="plotly_white",
    )
    return fig


def _as_video(video: torch.Tensor | np.ndarray) -> torch.Tensor:
    v = torch.as_tensor(np.asarray(video) if not isinstance(video, torch.Tensor) else video).detach().cpu().float()
    if v.dim() != 4:
        raise ValueError(f"a video must be (channel, frame, height, width); got shape {tuple(v.shape)}")
    if v.shape[0] == 2:
        raise ValueError("a video with 2 channels cannot be shown as grey (1 channel) or colour (3 or more); "
                         "pass one channel, e.g. video[:1], or three")
    return v


def _value_range(video: torch.Tensor, value_range: tuple[float, float] | None) -> tuple[float, float]:
    """The given range, or a guess from the video: [-1, 1] if it has a negative value, else [0, 1]."""
    if value_range is None:
        return (-1.0, 1.0) if bool(video.min() < 0) else (0.0, 1.0)
    lo, hi = (float(b) for b in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range={value_range!r} must be (low, high) with low < high, e.g. (-1, 1)")
    return lo, hi


def _to_uint8_frames(video: torch.Tensor | np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(channel, frame, height, width) in ``value_range`` ([-1, 1] or [0, 1] by default) → (frame, height, width, 3)
    uint8."""
    v = _as_video(video)
    lo, hi = _value_range(v, value_range)
    v = ((v - lo) / (hi - lo)).clamp(0, 1)
    if v.shape[0] == 1:
        v = v.expand(3, -1, -1, -1)
    elif v.shape[0] != 3:
        v = v[:3]
    return (v.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)


def video_figure(
    videos: Mapping[str, torch.Tensor] | Sequence[torch.Tensor], title: str = "", scale: int = 8, *,
    value_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Side-by-side plotly animation of videos shaped (channel, frame, height, width), one slider over frames.

    Values in ``value_range`` for all videos; without it each video's range is guessed, [-1, 1] if it has a
    negative value, else [0, 1], so a [-1, 1] video that happens to have none is shown darker than it is: pass
    ``value_range`` to compare videos of one range side by side. 1-channel videos are shown in grey, more than
    3 channels show the first 3, 2 channels are refused.
    """
    if not isinstance(videos, Mapping):
        videos = {f"video {i}": v for i, v in enumerate(videos)}
    frames = {name: _to_uint8_frames(v, value_range) for name, v in videos.items()}
    n_frames = min(f.shape[0] for f in frames.values())
    names = list(frames)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for i, name in enumerate(names):
        fig.add_trace(go.Image(z=frames[name][0]), row=1, col=i + 1)
    fig.frames = [
        go.Frame(data=[go.Image(z=frames[name][t]) for name in names], name=str(t), traces=list(range(len(names))))
        for t in range(n_frames)
    ]
    h, w = next(iter(frames.values())).shape[1:3]
    panel = w * scale // 2 + 40
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_annotations(font_size=12)  # subplot titles
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=max(300, h * scale // 2 + 200),
        width=max(420, len(names) * panel, 9 * max(len(title), 1)),  # wide enough for the title
        margin={"t": 70, "b": 90, "l": 10, "r": 10},
        updatemenus=[
            {
                "type": "buttons", "showactive": False, "direction": "left",
                "x": 0, "xanchor": "left", "y": 0, "yanchor": "top", "pad": {"t": 35},
                "buttons": [
                    {"label": "▶ play", "method": "animate",
                     "args": [None, {"frame": {"duration": 150, "redraw": True}, "fromcurrent": True}]},
                    {"label": "❚❚", "method": "animate",
                     "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}]},
                ],
            }
        ],
        sliders=[
            {
                "x": 0.22, "len": 0.78, "y": 0, "yanchor": "top", "pad": {"t": 20},
                "steps": [
                    {"label": str(t), "method": "animate",
                     "args": [[str(t)], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}]}
                    for t in range(n_frames)
                ],
                "currentvalue": {"prefix": "frame ", "xanchor": "right"},
            }
        ],
    )
    return fig


def frame_strip_figure(
    videos: Mapping[str, torch.Tensor], frames: Sequence[int] | None = None, title: str = "", scale: int = 4,
    gap: int = 2, *, value_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Static grid of frames: one row per video, one column per chosen frame (a picture that survives PNG export).

    ``videos`` maps a row label to a ``(channel, frame, height, width)`` video in ``[-1, 1]`` or ``[0, 1]`` (as
    :func:`video_figure`, ``value_range`` as there); ``frames`` are frame indices (default: six spread over
    the shortest video). Pixels are enlarged ``scale`` times without interpolation, and rows and columns are
    separated by ``gap`` white pixels.
    """
    if not isinstance(videos, Mapping) or not videos:
        raise ValueError("pass a non-empty mapping {row label: (channel, frame, height, width) video}")
    rows = {name: _to_uint8_frames(v, value_range) for name, v in videos.items()}
    n_frames = min(f.shape[0] for f in rows.values())
    frames = list(np.linspace(0, n_frames - 1, min(6, n_frames)).round().astype(int)) if frames is None else \
        [int(f) for f in frames]
    bad = [f for f in frames if not -n_frames <= f < n_frames]
    if bad:
        raise ValueError(f"frames {bad} outside the {n_frames} frames of the shortest video")
    shapes = {f.shape[1:3] for f in rows.values()}
    if len(shapes) != 1:
        raise ValueError(f"all videos must share one frame size; got {sorted(shapes)}")
    h, w = next(iter(shapes))
    H, W = h * scale, w * scale
    mosaic = np.full((len(rows) * (H + gap) - gap, len(frames) * (W + gap) - gap, 3), 255, dtype=np.uint8)
    for r, video in enumerate(rows.values()):
        for c, f in enumerate(frames):
            tile = video[f].repeat(scale, axis=0).repeat(scale, axis=1)
            mosaic[r * (H + gap): r * (H + gap) + H, c * (W + gap): c * (W + gap) + W] = tile
    fig = go.Figure(go.Image(z=mosaic, hoverinfo="skip"))
    fig.update_xaxes(tickvals=[c * (W + gap) + W / 2 for c in range(len(frames))],
                     ticktext=[f"frame {f % n_frames}" for f in frames], showgrid=False, side="top")
    fig.update_yaxes(tickvals=[r * (H + gap) + H / 2 for r in range(len(rows))], ticktext=list(rows),
                     showgrid=False)
    fig.update_layout(title={"text": title, "font": {"size": 14}}, template="plotly_white",
                      width=max(420, mosaic.shape[1] + 260), height=mosaic.shape[0] + 140,
                      margin={"t": 90, "b": 20, "l": 230, "r": 20})
    return fig
