"""The picture of ``forecast --plot``: the available balance, its projection, the budgets.

matplotlib (the ``plot`` extra) is imported only when a picture is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple

from imagine_billing.cli.output import PNG, output_problem, write_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from imagine_billing.planner.forecasting import Forecast

__all__ = ["FORMATS", "PLOT_HINT", "BudgetMark", "draw_forecast", "forecast_figure",
           "matplotlib_module", "plot_format", "plot_problem"]


class BudgetMark(NamedTuple):
    """A budget as the picture shows it, in its current period."""

    label: str
    """The legend's line: name, period, what is left, when it is used up."""
    floor: int | None
    """The available balance at which the period's budget is used up, drawn from now to the
    period's end; ``None`` for a scoped budget, whose spend is only part of the balance's."""
    until: datetime | None
    """The period's end (``None`` for a total budget)."""
    used_up: datetime | None
    """When the scope's own burn uses the budget up, if within the period: marked on the
    forecast."""

FORMATS = {".png": ("png", "a PNG image", PNG), ".svg": ("svg", "an SVG image", b"<?xml"),
           ".pdf": ("pdf", "a PDF document", b"%PDF-")}
"""The picture's format by the file's extension: matplotlib's name for it, what it is,
and how its files start (a file there is replaced only if it starts so)."""


def plot_format(path: str) -> tuple[str, str, bytes] | None:
    """The `FORMATS` entry of ``path``'s extension (any case), or ``None``."""
    return FORMATS.get(os.path.splitext(path)[1].lower())

PLOT_HINT = ("--plot needs matplotlib: install the 'plot' extra (from a clone: "
             "pip install -e '.[plot]'; from the package index: pip install "
             "'imagine-billing[plot]')")

_POINTS = 200
"""Points of the projected lines across the picture."""


def matplotlib_module() -> Any:
    """The matplotlib module, or ``None`` when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    return matplotlib


def _x(when: datetime) -> float:
    """Matplotlib's date number (floats are for plotting only)."""
    from matplotlib import dates as mdates

    return float(mdates.date2num(when))  # type: ignore[no-untyped-call]


def _end(forecast: Forecast) -> datetime:
    """The right edge of the picture: the horizon, or past the runs-out dates when they are
    within ten years."""
    now = forecast.now
    end = now + forecast.horizon
    if forecast.runway is not None and forecast.runway <= timedelta(days=3650):
        end = max(now + forecast.runway * 1.15, now + timedelta(days=1))
    if forecast.latest_exhaustion is not None and forecast.latest_exhaustion - now <= timedelta(
            days=3650):
        end = max(end, forecast.latest_exhaustion + (forecast.latest_exhaustion - now) * 0.05)
    return end


def forecast_figure(forecast: Forecast, history: Sequence[tuple[datetime, int]],
                    budget_lines: Sequence[BudgetMark], *,
                    steps: bool = True) -> Figure:
    """The picture of a forecast: the available balance, its projection with the low/high
    band, the runs-out date, and one line per budget.

    Args:
        forecast: The forecast (its ``now``, ``available``, burn and range).
        history: ``(moment, available)`` after each change up to ``now``, oldest first: drawn
            as steps (the balance holds until the next entry).
        steps: ``False`` when ``history`` holds samples (once a day) rather than every
            change: then drawn as a line through them.
        budget_lines: the budgets (`BudgetMark`): a budget of every entry as the balance at
            which its period is used up, from now to the period's end; any budget as a mark
            on the forecast where its scope's own burn uses it up, within its period.

    Returns:
        The matplotlib `Figure` (1100 x 600 pixels), not yet saved.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    end = _end(forecast)
    begin = min([forecast.now, *(t for t, _ in history)])
    figure = Figure(figsize=(11, 6), dpi=100, layout="constrained")
    axes = figure.subplots()
    if history:
        axes.plot([_x(t) for t, _ in history], [max(0, v) for _, v in history],
                  color="tab:blue", linewidth=2,
                  drawstyle="steps-post" if steps else "default",
                  marker=None if steps else "o", markersize=3,
                  label="available (ledger)" if steps else "available (ledger, once a day)")
    _draw_projection(axes, forecast, end)
    _draw_budgets(axes, forecast, end, budget_lines)
    top = max([float(forecast.available), *(float(v) for _, v in history),
               *(float(m.floor) for m in budget_lines if m.floor is not None)])
    axes.set_ylim(0, top * 1.12 if top > 0 else 1)  # headroom: a flat line is not the border
    axes.set_xlim(_x(begin), _x(end))
    _dress(figure, axes, forecast)
    return figure


def _draw_projection(axes: Any, forecast: Forecast, end: datetime) -> None:
    """The forecast from ``now`` to ``end``: the low/high band, the line at the mean burn,
    ``now``, and the runs-out date when it is in the picture."""
    now = forecast.now
    available = float(forecast.available)
    burn, low, high = float(forecast.burn_per_day), float(forecast.low), float(forecast.high)
    moments = [now + (end - now) * (i / _POINTS) for i in range(_POINTS + 1)]
    times = [_x(t) for t in moments]

    def level(rate: float) -> list[float]:
        return [max(0.0, available - rate * (t - now) / timedelta(days=1)) for t in moments]

    axes.fill_between(times, level(high), level(low), color="tab:orange", alpha=0.25,
                      label=f"forecast range ({low:,.1f} to {high:,.1f} tokens/day)")
    axes.plot(times, level(burn), color="tab:orange", linewidth=2, linestyle="--",
              label=f"forecast at {burn:,.1f} tokens/day")
    axes.axvline(_x(now), color="grey", linewidth=1)
    axes.annotate("now", (_x(now), 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                  textcoords="offset points", color="grey")
    out = forecast.exhausted_at
    if out is not None and out <= end:
        axes.axvline(_x(out), color="tab:red", linewidth=1, linestyle=":",
                     label=f"runs out {out:%Y-%m-%d %H:%M} UTC")
        # Beside the line, not on it, and up where the falling forecast is not.
        axes.annotate(f"runs out {out:%Y-%m-%d}", (_x(out), 0.98),
                      xycoords=("data", "axes fraction"), xytext=(-4, 0),
                      textcoords="offset points", color="tab:red", ha="right", va="top",
                      fontsize="small")


def _dress(figure: Figure, axes: Any, forecast: Forecast) -> None:
    """Labels, title, date and token ticks, grid, and the legend below the axes."""
    import matplotlib
    from matplotlib import dates as mdates

    years = sorted({int(mdates.num2date(x).year)  # type: ignore[no-untyped-call]
                    for x in axes.get_xlim()})
    axes.set_xlabel(f"date (UTC, {'-'.join(str(y) for y in years)})")
    axes.set_ylabel("available tokens")
    axes.set_title(f"Available tokens and forecast ({forecast.available:,} available at "
                   f"{forecast.now:%Y-%m-%d %H:%M} UTC)")
    # matplotlib's date helpers are untyped.
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    # The year on the axis's label and on each January, not only in a corner.
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
        locator, tz=UTC, show_offset=False, formats=["%Y", "%b %Y", "%d", "%H:%M", "%H:%M",
                                                     "%S.%f"]))
    axes.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axes.grid(True, alpha=0.3)
    # Below the axes, so that it hides no part of the picture; in two columns if they fit.
    widest = max(len(label) for label in axes.get_legend_handles_labels()[1])
    figure.legend(loc="outside lower center", ncols=2 if widest <= 72 else 1,
                  fontsize="small", frameon=False)


def _draw_budgets(axes: Any, forecast: Forecast, end: datetime,
                  marks: Sequence[BudgetMark]) -> None:
    """Each budget in its current period: its floor (a budget of every entry) from now to
    the period's end, and a mark where its scope's burn uses it up."""
    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    styles: list[Literal["-.", ":", "--", "-"]] = ["-.", ":", "--", "-"]
    now = forecast.now
    for index, mark in enumerate(marks):
        colour = colours[index % len(colours)]
        name = mark.label.split(" (", 1)[0]
        until = end if mark.until is None else min(mark.until, end)
        if mark.floor is not None and until > now:
            axes.hlines(mark.floor, _x(now), _x(until), color=colour, linewidth=1.5,
                        linestyle=styles[index % len(styles)], label=mark.label)
            # At the line's start, raised by its rank: lines close together keep their names.
            axes.annotate(name, (_x(now), mark.floor), xytext=(4, 3 + 11 * (index % 3)),
                          textcoords="offset points", color=colour, fontsize="small")
            drawn = True
        else:
            drawn = False
        if mark.used_up is not None and now <= mark.used_up <= end:
            days = (mark.used_up - now) / timedelta(days=1)
            level = max(0.0, float(forecast.available) - float(forecast.burn_per_day) * days)
            axes.plot([_x(mark.used_up)], [level], color=colour, marker="X", markersize=9,
                      linestyle="none", label=None if drawn else mark.label)
            axes.annotate(f"{name} used up", (_x(mark.used_up), level), xytext=(6, 6),
                          textcoords="offset points", color=colour, fontsize="small")
        elif not drawn:  # nothing to draw in the picture: named in the legend all the same
            axes.plot([], [], color=colour, marker="X", linestyle="none", label=mark.label)


def draw_forecast(path: str, forecast: Forecast, history: Sequence[tuple[datetime, int]],
                  budget_lines: Sequence[BudgetMark], *,
                  steps: bool = True) -> Figure:
    """Draw `forecast_figure` to ``path``, exactly that name, as its extension says (PNG, SVG
    or PDF: `FORMATS`), whole or not at all (see `write_output`): a file there is replaced
    only if it is empty or a picture of that format.

    Raises:
        ValueError: the extension is not one of `FORMATS`.
        FileExistsError: ``path`` holds a file that is not a picture of that format.
        OSError: The file cannot be written.
    """
    found = plot_format(path)
    if found is None:
        raise ValueError(_FORMAT_PROBLEM.format(path=path))
    name, kind, signature = found
    figure = forecast_figure(forecast, history, budget_lines, steps=steps)
    # SVG and PDF record the time they were made, and SVG random ids, unless told not to:
    # the same forecast draws the same bytes.
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(name)

    def save(file: BinaryIO) -> None:
        import matplotlib

        with matplotlib.rc_context({"svg.hashsalt": "imagine-billing"}):
            figure.savefig(file, format=name, metadata=metadata)

    write_output("--plot", path, kind, signature, save)
    return figure


_FORMAT_PROBLEM = ("--plot {path!r}: the file name must end in .png, .svg or .pdf (the "
                   "picture's format)")


def plot_problem(path: str, ledger: str) -> str | None:
    """Why ``--plot PATH`` cannot be written, found before any work; ``None`` if it may be
    (see `output_problem`: never the ``ledger`` or a file SQLite keeps beside it, nor a file
    that is not a PNG image)."""
    target = Path(path)
    try:
        if target.is_dir():
            return (f"--plot {path!r} is a directory; expected a file name such as "
                    f"{str(target / 'forecast.png')!r}")
        folder = target.parent
        if not folder.is_dir():
            what = "is not a directory" if folder.exists() else "does not exist"
            return f"--plot {path!r}: the directory {str(folder)!r} {what}"
    except OSError as error:  # a name too long, a loop of links...
        return f"--plot {path!r}: {error.strerror or error}"
    companions = {os.path.realpath(ledger) + suffix for suffix in ("-wal", "-shm", "-journal")}
    if os.path.realpath(path) in companions:
        return (f"--plot {path!r} is a file SQLite keeps beside the ledger {ledger!r}: give "
                "another file name")
    found = plot_format(path)
    if found is None:
        return _FORMAT_PROBLEM.format(path=path)
    _, kind, signature = found
    return output_problem("--plot", path, kind, signature, keep=[ledger])
