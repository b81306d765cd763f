"""Plot primitives shared by the reports: one style, one colour per mechanism, seed bands.

Everything draws on a :class:`matplotlib.figure.Figure` created without ``pyplot`` (the
Agg canvas, no global backend or figure state), so the functions are safe in worker
processes and tests. A report builds a figure with :func:`figure`, fills its axes with
:func:`trajectory`, :func:`ci_bars`, :func:`distribution` or :func:`loglog_fit` and
writes it with :func:`save` (PNG, fixed metadata so that the same data give the same
bytes).

matplotlib and scipy are imported by the functions that need them, not with the module:
the command line reads :data:`BANDS` while it builds ``market report --help``, which
must stay light (no heavy library imported).

The statistics behind the error bars live here too: :func:`mean_ci` is the Student-t
interval over seeds, :func:`seed_band` the per-round band across seeds and
:func:`fit_loglog` the least-squares power law ``y = 10**intercept * x**slope``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: rc settings of every report figure
STYLE: dict[str, object] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "savefig.dpi": 130,
    "figure.dpi": 100,
    "svg.hashsalt": "market",
}

#: fixed colour and line style of the built-in mechanisms (references drawn dashed/dotted)
MECHANISM_STYLE: dict[str, tuple[str, str]] = {
    "mohaf": ("#1f77b4", "-"),
    "greedy": ("#ff7f0e", "-"),
    "first_price": ("#2ca02c", "-"),
    "second_price": ("#d62728", "--"),
    "random": ("#7f7f7f", ":"),
    "optimal": ("#000000", "--"),
}
_EXTRA_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]

#: seed bands :func:`seed_band` can draw
BANDS = ("minmax", "ci")


def mechanism_styles(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour and line style for each mechanism, stable across every figure.

    Built-in mechanisms keep their colour in any report; other names take the next
    free colour in the order given.
    """
    out, extra = {}, iter(_EXTRA_COLOURS * (1 + len(names) // len(_EXTRA_COLOURS)))
    for name in names:
        out[name] = MECHANISM_STYLE.get(name) or (next(extra), "-")
    return out


@contextmanager
def report_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of the block (figures are drawn inside it)."""
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        yield


def figure(nrows: int = 1, ncols: int = 1, width: float = 7.0, height: float = 4.2,
           sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A figure with an ``nrows x ncols`` array of axes (always a 2-D array).

    Args:
        nrows: rows of axes.
        ncols: columns of axes.
        width: inches per column.
        height: inches per row.
        sharey: one vertical scale for all axes (e.g. ratios drawn one above the other).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` with fixed metadata; return the path."""
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of independent samples (e.g. one per seed).

    Args:
        values: the samples (NaNs are dropped).
        confidence: the interval's coverage.

    Returns:
        ``(mean, low, high)``; low and high are NaN with fewer than two samples, and
        equal to the mean when the samples do not vary.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def seed_band(frame: pd.DataFrame, value: str, x: str = "round", band: str = "minmax") -> pd.DataFrame:
    """Mean across seeds at each ``x``, with a band: min-max or 95 % t-interval.

    NaN values are left out; an ``x`` where every value is NaN gets NaN (a gap in the line).

    Args:
        frame: rows of one mechanism with columns ``seed``, ``x`` and ``value``.
        value: the column to summarise.
        x: the column along the horizontal axis.
        band: ``"minmax"`` or ``"ci"``.

    Returns:
        Columns ``x, mean, low, high``, sorted by ``x``.
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    rows = []
    for key, group in frame.groupby(x, sort=True):
        v = group[value].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        if v.size == 0:
            mean = low = high = float("nan")
        elif band == "minmax":
            mean, low, high = float(v.mean()), float(v.min()), float(v.max())
        else:
            mean, low, high = mean_ci(v)
        rows.append((key, mean, low, high))
    return pd.DataFrame(rows, columns=[x, "mean", "low", "high"])


def ci_bars(
    ax: Axes,
    names: Sequence[str],
    mean: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    xlabel: str,
    fmt: str = "{:.3g}",
    labels: Sequence[str] | None = None,
) -> None:
    """Horizontal bars (one per mechanism, top to bottom) with confidence-interval whiskers.

    A NaN mean draws no bar and writes ``n/a``.

    Args:
        ax: the axes to draw on.
        names: mechanism names, drawn top to bottom (they pick the colours).
        mean: bar lengths.
        low: lower interval bounds (NaN: no whisker).
        high: upper interval bounds.
        xlabel: the value axis label.
        fmt: format of the value printed next to each bar.
        labels: tick labels in place of the names (e.g. with a note).
    """
    from matplotlib import patheffects

    styles = mechanism_styles(names)
    y = np.arange(len(names))[::-1]
    m = np.asarray(mean, dtype=float)
    lo = np.nan_to_num(m - np.asarray(low, dtype=float), nan=0.0)
    hi = np.nan_to_num(np.asarray(high, dtype=float) - m, nan=0.0)
    ax.barh(y, m, color=[styles[n][0] for n in names], alpha=0.85, height=0.65)
    whiskers = ax.errorbar(m, y, xerr=[lo, hi], fmt="none", ecolor="#222222", elinewidth=1.2, capsize=3)
    halo = [patheffects.withStroke(linewidth=2.6, foreground="white")]  # visible on dark bars too
    for artist in (*whiskers.lines[1], *whiskers.lines[2]):
        artist.set_path_effects(halo)
    ax.set_yticks(y, list(labels if labels is not None else names))
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    ends = m + hi
    finite = ends[np.isfinite(ends)]
    span = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-12)
    for yi, mi, end in zip(y, m, ends):
        text = fmt.format(mi) if np.isfinite(mi) else "n/a"
        ax.text(max(end, 0.0) + 0.02 * span if np.isfinite(end) else 0.02 * span, yi, text, va="center", fontsize=8)
    starts = (m - lo)[np.isfinite(m - lo)]
    left = min(0.0, float(starts.min()) if starts.size else 0.0)
    ax.set_xlim(left - 0.04 * (span - left) if left < 0 else 0.0, 1.18 * span)


def distribution(
    ax: Axes,
    groups: Mapping[str, np.ndarray],
    ylabel: str,
    reference: float | None = None,
    top: float | None = None,
) -> None:
    """Box plot per mechanism with every observation overlaid as a jittered dot.

    Args:
        ax: the axes to draw on.
        groups: mechanism name -> observations (drawn left to right).
        ylabel: the value axis label.
        reference: draw a horizontal line at this value (e.g. 1 for ALG/OPT).
        top: cut the axis here; observations above it are drawn as triangles at the top
            edge with their count, so that a few wild values do not flatten the rest.
    """
    names = list(groups)
    styles = mechanism_styles(names)
    data = [np.asarray(groups[n], dtype=float) for n in names]
    box = ax.boxplot(data, tick_labels=names, widths=0.55, showfliers=False, patch_artist=True,
                     medianprops={"color": "#222222"})
    for patch, name in zip(box["boxes"], names):
        patch.set_facecolor(styles[name][0])
        patch.set_alpha(0.35)
    jitter = np.random.default_rng(0)  # fixed: the same data give the same picture
    for i, (name, values) in enumerate(zip(names, data), start=1):
        offsets = i + jitter.uniform(-0.18, 0.18, values.size)
        above = values > top if top is not None else np.zeros(values.size, dtype=bool)
        ax.scatter(offsets[~above], values[~above], s=9, color=styles[name][0], alpha=0.6, linewidths=0)
        if above.any():
            ax.scatter(offsets[above], np.full(int(above.sum()), top), marker="^", s=28, color=styles[name][0],
                       clip_on=False, zorder=3)
            ax.annotate(f"{int(above.sum())} above", (i, top), xytext=(0, 8), textcoords="offset points",
                        ha="center", fontsize=8)
    if top is not None and any((v > top).any() for v in data):
        low = min(float(v[v <= top].min()) for v in data if (v <= top).any()) if any((v <= top).any() for v in data) else 0.0
        ax.set_ylim(low - 0.05 * (top - low), top)
    if reference is not None:
        ax.axhline(reference, color="#444444", linestyle=":", linewidth=1)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)


def fit_loglog(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Least-squares power law through points: ``log10 y = slope * log10 x + intercept``.

    Returns:
        ``(slope, intercept)`` from :func:`numpy.polyfit` of degree 1 on the log10 values.
    """
    slope, intercept = np.polyfit(np.log10(np.asarray(x, dtype=float)), np.log10(np.asarray(y, dtype=float)), 1)
    return float(slope), float(intercept)


def loglog_fit(
    ax: Axes,
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    fit: tuple[float, float, float, float] | None,
    style: tuple[str, str],
) -> None:
    """Measured points of one series on log-log axes, with its fitted power law.

    Args:
        ax: the axes (set to log-log here).
        name: series label.
        x: sizes.
        y: measured values.
        fit: ``(slope, intercept, x_from, x_to)``: the line is drawn over that range and
            the slope is written in the legend; None draws the points only.
        style: ``(colour, line style)`` as from :func:`mechanism_styles`.
    """
    colour, line = style
    label = name
    if fit is not None:
        slope, intercept, lo, hi = fit
        xs = np.geomspace(lo, hi, 50)
        ax.plot(xs, 10**intercept * xs**slope, color=colour, linestyle=line, linewidth=1.4)
        label = f"{name}: slope {slope:.2f}"
    ax.plot(x, y, "o", color=colour, markersize=5)
    ax.plot([], [], color=colour, linestyle=line if fit is not None else "none", marker="o", markersize=5,
            label=label)  # legend entry: marker and fitted line together
    ax.set_xscale("log")
    ax.set_yscale("log")


def plain_log_axis(ax: Axes, axis: str = "y") -> None:
    """Label a logarithmic axis with plain numbers (``0.1``, ``1``, ``10``; ``0.2`` between decades), not ``2 x 10^-1``.

    Majors at every decade, labelled with ``{:g}``; minor ticks at 2 and 5 times a decade,
    labelled only when the axis spans less than two decades (else unlabelled).

    Args:
        ax: axes whose ``axis`` (``"x"`` or ``"y"``) is already on a log scale.
        axis: which axis.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    target.set_major_locator(LogLocator(base=10.0))
    target.set_major_formatter(plain)
    target.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    narrow = low > 0 and high / low < 100.0
    target.set_minor_formatter(plain if narrow else NullFormatter())


def trajectory(
    ax: Axes,
    frame: pd.DataFrame,
    value: str,
    mechanisms: Sequence[str],
    band: str = "minmax",
    x: str = "round",
    logy: bool = False,
    window: int = 1,
    band_alpha: float = 0.12,
) -> None:
    """One line per mechanism (mean across seeds per ``x``) with a shaded seed band, optionally smoothed.

    With ``window > 1`` (noisy per-round series, many mechanisms on one axes) the seed mean and band
    (:func:`seed_band`) are averaged over the ``window`` nearest ``x`` values (fewer at the
    ends; ``pandas.Series.rolling(window, center=True, min_periods=1)``). With ``logy``
    the average is geometric (the mean of the logarithms, over positive values), so one
    spike does not lift its neighbours by orders of magnitude.

    Args:
        ax: the axes to draw on.
        frame: rows with ``mechanism, seed``, ``x`` and ``value``.
        value: the metric column.
        mechanisms: which mechanisms, in legend order.
        window: points in the moving average (1: no smoothing).
        band: ``"minmax"`` or ``"ci"``, as for :func:`seed_band`.
        x: the horizontal-axis column.
        logy: logarithmic vertical axis and geometric averaging.
        band_alpha: opacity of the bands (lower with many lines).
    """
    styles = mechanism_styles(mechanisms)

    def smooth(s: pd.Series) -> pd.Series:
        if window <= 1:
            return s
        if not logy:
            return s.rolling(window, center=True, min_periods=1).mean()
        logs = np.log(s.where(s > 0))
        return np.exp(logs.rolling(window, center=True, min_periods=1).mean())

    for name in mechanisms:
        rows = frame[frame["mechanism"] == name]
        if rows.empty:
            continue
        s = seed_band(rows, value, x, band)
        colour, line = styles[name]
        ax.plot(s[x], smooth(s["mean"]), color=colour, linestyle=line, label=name)
        if rows["seed"].nunique() > 1:
            ax.fill_between(s[x], smooth(s["low"]), smooth(s["high"]), color=colour, alpha=band_alpha, linewidth=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x.replace("_", " "))
