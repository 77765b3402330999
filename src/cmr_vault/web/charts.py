"""Bar charts drawn on the server as SVG: geometry here, markup in `templates/charts.html`.

Pages need no JavaScript, so a chart is computed once in Python (positions, a value axis with
round ticks) and written out as SVG that scales to its box (`viewBox`, width 100 %), so it never
runs past a phone's screen. Each chart has a title and a description for screen readers, and
the page shows the same numbers as a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The drawing's own units; the browser scales them to the width available.
WIDTH = 480
LABEL_WIDTH = 150  # room for category names left of horizontal bars
BAR_HEIGHT = 22
BAR_GAP = 8
AXIS_ROOM = 44  # below the plot: tick labels and the axis title
TOP = 8
RIGHT = 40  # room for the value written after the longest bar
COLUMN_PLOT_HEIGHT = 160
COLUMN_LEFT = 48  # room for the value axis left of columns
MAX_LABEL_CHARS = 20


@dataclass(frozen=True)
class Tick:
    """One mark on the value axis: its number and where it sits along the axis."""

    value: int
    at: float


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value (None when suppressed) and its rectangle."""

    label: str
    short_label: str
    value: int | None
    x: float
    y: float
    width: float
    height: float
    show_label: bool = True


@dataclass(frozen=True)
class Chart:
    """A bar chart ready to draw: horizontal (categories) or columns (days)."""

    title: str
    description: str
    value_label: str
    category_label: str
    horizontal: bool
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    width: int
    height: int
    plot_left: float
    plot_top: float
    plot_width: float
    plot_height: float

    @property
    def is_empty(self) -> bool:
        """True when there is nothing above zero to draw."""
        return not any(bar.value for bar in self.bars)


def nice_ticks(peak: int, *, most: int = 5) -> list[int]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least `peak`."""
    if peak <= 0:
        return [0, 1]
    raw = peak / most
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    top = step * math.ceil(peak / step)
    return list(range(0, top + 1, step))


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def horizontal_bars(
    title: str,
    description: str,
    items: Sequence[tuple[str, int | None]],
    *,
    value_label: str,
    category_label: str,
) -> Chart:
    """One bar per category, the value axis along the bottom (labels fit on the left)."""
    ticks = nice_ticks(max((v or 0 for _, v in items), default=0))
    plot_left, plot_width = LABEL_WIDTH, WIDTH - LABEL_WIDTH - RIGHT
    plot_height = len(items) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    scale = plot_width / ticks[-1]
    bars = tuple(
        Bar(
            label=label,
            short_label=_short(label),
            value=value,
            x=plot_left,
            y=TOP + BAR_GAP + i * (BAR_HEIGHT + BAR_GAP),
            width=round((value or 0) * scale, 1),
            height=BAR_HEIGHT,
        )
        for i, (label, value) in enumerate(items)
    )
    return Chart(
        title=title,
        description=description,
        value_label=value_label,
        category_label=category_label,
        horizontal=True,
        bars=bars,
        ticks=tuple(Tick(t, round(plot_left + t * scale, 1)) for t in ticks),
        width=WIDTH,
        height=int(TOP + plot_height + AXIS_ROOM),
        plot_left=plot_left,
        plot_top=TOP,
        plot_width=plot_width,
        plot_height=plot_height,
    )


def columns(
    title: str,
    description: str,
    items: Sequence[tuple[str, int]],
    *,
    value_label: str,
    category_label: str,
) -> Chart:
    """One column per day (oldest left), the value axis on the left; only every few days is
    labelled when there are many, so the labels never overlap."""
    ticks = nice_ticks(max((v for _, v in items), default=0))
    plot_left, plot_width = COLUMN_LEFT, WIDTH - COLUMN_LEFT - 12
    slot = plot_width / max(1, len(items))
    every = max(1, math.ceil(len(items) / 8))
    scale = COLUMN_PLOT_HEIGHT / ticks[-1]
    bars = tuple(
        Bar(
            label=label,
            short_label=label,
            value=value,
            x=round(plot_left + i * slot + slot * 0.15, 1),
            y=round(TOP + COLUMN_PLOT_HEIGHT - value * scale, 1),
            width=round(slot * 0.7, 1),
            height=round(value * scale, 1),
            show_label=i % every == 0,
        )
        for i, (label, value) in enumerate(items)
    )
    return Chart(
        title=title,
        description=description,
        value_label=value_label,
        category_label=category_label,
        horizontal=False,
        bars=bars,
        ticks=tuple(Tick(t, round(TOP + COLUMN_PLOT_HEIGHT - t * scale, 1)) for t in ticks),
        width=WIDTH,
        height=TOP + COLUMN_PLOT_HEIGHT + AXIS_ROOM,
        plot_left=plot_left,
        plot_top=TOP,
        plot_width=plot_width,
        plot_height=COLUMN_PLOT_HEIGHT,
    )
