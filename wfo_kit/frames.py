"""Polars expressions whose results do not depend on thread count, chunking or hashing.

A result table must come out the same, to the last bit and in the same row order, on every run
of the same inputs: with ``POLARS_MAX_THREADS=1`` or 64, from a file read in one chunk or in many.
Measured on Polars 2.1 (2 cores), three things break that and are avoided here:

* A float ``sum``/``mean`` aggregation in ``group_by`` adds partial sums per thread for groups of
  more than a few dozen rows, so the last bit changes with the thread count and between runs
  (2,000 rows in one group: two different means at 2 threads). :func:`group_sum` and
  :func:`group_mean` add each group's values in row order instead.
* ``pl.sum_horizontal`` adds its columns in a thread-dependent order: a bridge of five items gave
  -178.2 at 1 thread and -178.20000000000002 at 2. :func:`ordered_sum` folds left to right.
* ``pl.format`` panics (``assertion failed: i < self.len()``) on a column in which an empty chunk
  comes before a non-empty one, as a filter leaves after ``pl.concat(..., rechunk=False)``.
  :func:`format_text` builds the same text with ``pl.concat_str``, which has no such bug.

Row order is the other half: a ``group_by`` without ``maintain_order``, a ``unique`` without it
and hash joins give an order that changes between runs. Every result table is sorted by its key
(or built in an order documented beside it); see ``docs/conventions.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce

import polars as pl


def format_text(template: str, *args: pl.Expr | str | float | None) -> pl.Expr:
    """``pl.format`` without its Polars 2.1 panic over empty chunks: each ``{}`` takes one arg.

    An expression argument is cast to text as ``pl.format`` does; a null in any argument gives
    a null result (as ``pl.format``). Plain Python values are literals, not column names.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"r": [0.07, None], "g": [0.09, 0.02]})
    >>> text = format_text("rate {} below growth {}", pl.col("r"), pl.col("g"))
    >>> df.select(text).to_series().to_list()
    ['rate 0.07 below growth 0.09', None]
    """
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        msg = f"template {template!r} has {len(pieces) - 1} placeholder(s) for {len(args)} args"
        raise ValueError(msg)
    parts: list[pl.Expr] = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append(pl.lit(piece))
        if i < len(args):
            arg = args[i]
            parts.append((arg if isinstance(arg, pl.Expr) else pl.lit(arg)).cast(pl.String))
    return pl.concat_str(parts) if parts else pl.lit("")


def ordered_sum(terms: Iterable[pl.Expr]) -> pl.Expr:
    """Row-wise sum of ``terms``, added left to right; a null term counts as 0 (as
    ``pl.sum_horizontal``, whose addition order depends on the thread count).

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"a": [-406.38], "b": [-55.77], "c": [227.5], "d": [56.45]})
    >>> df.select(ordered_sum(pl.col(c) for c in "abcd")).item()
    -178.2
    """
    return reduce(lambda acc, term: acc + term, (t.fill_null(0.0) for t in terms))


def group_sum(values: pl.Expr) -> pl.Expr:
    """In ``group_by(...).agg``: the sum of each group's ``values``, added in row order.

    ``values`` are floats. Nulls are skipped; an empty group sums to 0.0 (never -0.0). Outside an
    aggregation: the sum of the whole column, in row order whatever its chunks.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"k": ["a", "a", "b"], "x": [0.1, 0.2, None]})
    >>> df.group_by("k", maintain_order=True).agg(group_sum(pl.col("x")))["x"].to_list()
    [0.30000000000000004, 0.0]
    >>> positive = pl.col("x").filter(pl.col("x") > 1)
    >>> df.group_by("k", maintain_order=True).agg(group_sum(positive))["x"].cast(str).to_list()
    ['0.0', '0.0']
    """
    # A list's sum is computed by one thread over its contiguous values. An empty list sums to
    # -0.0 (and Polars drops a "+ 0.0"): report it as 0.0, as ``sum`` does.
    total = values.implode().list.sum()
    return pl.when(total != 0.0).then(total).otherwise(pl.lit(0.0))


def group_mean(values: pl.Expr) -> pl.Expr:
    """In ``group_by(...).agg``: the mean of each group's non-null ``values`` (null if none),
    added in row order."""
    return values.implode().list.mean()
