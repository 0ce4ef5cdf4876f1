"""The picture of ``forecast --plot``: the available balance, its projection, the budgets.

matplotlib (the ``plot`` extra) is imported only when a picture is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from imagine_billing.cli.output import PNG, output_problem, write_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from imagine_billing.planner.forecasting import Forecast

__all__ = ["PLOT_HINT", "draw_forecast", "forecast_figure", "matplotlib_module", "plot_problem"]

PLOT_HINT = ("--plot needs matplotlib: install the 'plot' extra, e.g. "
             "pip install 'imagine-billing[plot]'")

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
                    budget_lines: Sequence[tuple[str, int, datetime | None]], *,
                    steps: bool = True) -> Figure:
    """The picture of a forecast: the available balance, its projection with the low/high
    band, the runs-out date, and one line per budget.

    Args:
        forecast: The forecast (its ``now``, ``available``, burn and range).
        history: ``(moment, available)`` after each change up to ``now``, oldest first: drawn
            as steps (the balance holds until the next entry).
        steps: ``False`` when ``history`` holds samples (once a day) rather than every
            change: then drawn as a line through them.
        budget_lines: ``(label, balance, until)``: the available balance at which each
            budget's current period would be used up, drawn as a horizontal line across the
            picture, with a mark at ``until`` (the period's end; ``None`` for a total budget).

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
    _draw_budgets(axes, [(label, balance, None if until is None or not begin <= until <= end
                          else _x(until)) for label, balance, until in budget_lines])
    top = max([float(forecast.available), *(float(v) for _, v in history),
               *(float(b) for _, b, _ in budget_lines)])
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
        axes.annotate(f"runs out {out:%Y-%m-%d %H:%M} UTC", (_x(out), 0.5),
                      xycoords=("data", "axes fraction"), xytext=(4, 0),
                      textcoords="offset points", color="tab:red", rotation=90, va="center")


def _dress(figure: Figure, axes: Any, forecast: Forecast) -> None:
    """Labels, title, date and token ticks, grid, and the legend below the axes."""
    import matplotlib
    from matplotlib import dates as mdates

    axes.set_xlabel("date (UTC)")
    axes.set_ylabel("available tokens")
    axes.set_title(f"Available tokens and forecast ({forecast.available:,} available at "
                   f"{forecast.now:%Y-%m-%d %H:%M} UTC)")
    # matplotlib's date helpers are untyped.
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    axes.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axes.grid(True, alpha=0.3)
    # Below the axes, so that it hides no part of the picture; in two columns if they fit.
    widest = max(len(label) for label in axes.get_legend_handles_labels()[1])
    figure.legend(loc="outside lower center", ncols=2 if widest <= 72 else 1,
                  fontsize="small", frameon=False)


def _draw_budgets(axes: Any, marks: Sequence[tuple[str, int, float | None]]) -> None:
    """One horizontal line per budget ``(label, balance, end)`` across the picture, named on
    the line, with a mark at ``end`` (the period's end as a date number, ``None`` when it is
    not in the picture)."""
    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    styles: list[Literal["-.", ":", "--", "-"]] = ["-.", ":", "--", "-"]
    for index, (label, balance, until) in enumerate(marks):
        colour = colours[index % len(colours)]
        # Across the whole picture, whatever the period's length: a week's budget is as
        # visible as a total one; the period's end, when in the picture, is marked on it.
        axes.axhline(balance, color=colour, linewidth=1.5,
                     linestyle=styles[index % len(styles)], label=label)
        # Its name on the line, each budget's further right: lines close together stay legible.
        axes.annotate(label.split(":", 1)[0], (0.01 + 0.24 * (index % 4), balance),
                      xycoords=("axes fraction", "data"), xytext=(0, 3),
                      textcoords="offset points", color=colour, fontsize="small")
        if until is not None:
            axes.plot([until], [balance], color=colour, marker="|", markersize=16,
                      markeredgewidth=2, linestyle="none")


def draw_forecast(path: str, forecast: Forecast, history: Sequence[tuple[datetime, int]],
                  budget_lines: Sequence[tuple[str, int, datetime | None]], *,
                  steps: bool = True) -> Figure:
    """Draw `forecast_figure` to the PNG file ``path``, exactly that name (no suffix added),
    whole or not at all (see `write_output`): a file there is replaced only if it is empty
    or a PNG image.

    Raises:
        FileExistsError: ``path`` holds a file that is not a PNG image.
        OSError: The file cannot be written.
    """
    figure = forecast_figure(forecast, history, budget_lines, steps=steps)
    write_output("--plot", path, "a PNG image", PNG,
                 lambda file: figure.savefig(file, format="png"))
    return figure


def plot_problem(path: str, ledger: str) -> str | None:
    """Why ``--plot PATH`` cannot be written, found before any work; ``None`` if it may be
    (see `output_problem`: never the ``ledger`` or a file SQLite keeps beside it, nor a file
    that is not a PNG image)."""
    target = Path(path)
    try:
        if target.is_dir():
            return (f"--plot {path!r} is a directory; expected a PNG file name such as "
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
    return output_problem("--plot", path, "a PNG image", PNG, keep=[ledger])
