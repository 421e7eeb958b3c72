"""How the report writes numbers: in one place, so a preface placeholder prints exactly what the
tables print for the same runs (an accuracy in the preface and in its table cannot disagree)."""

from __future__ import annotations

import statistics


def percent(value: float) -> str:
    """An accuracy or a share, in percent, one decimal."""
    return f"{value:.1f}"


def mean_std(values: list[float]) -> str:
    """Mean ± sample standard deviation over seeds, or the one value."""
    if len(values) == 1:
        return percent(values[0])
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def signed(value: float) -> str:
    """A difference in points, with its sign: +12.7, -3.0."""
    return f"{value:+.1f}"


def loss(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def span(low: str, high: str) -> str:
    """A range of non-negative values, or one value when both ends print the same."""
    return low if low == high else f"{low}–{high}"


def signed_span(low: float, high: float) -> str:
    """A range of signed differences: "to" rather than a dash, which would read as a minus sign."""
    return f"{signed(low)} to {signed(high)}"


def plain(value: object) -> str:
    """A config value as a person writes it: 120.0 epochs is 120."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rate(value: float | None) -> str:
    """Tokens per second, to three significant figures; a dash where none was logged."""
    return "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
