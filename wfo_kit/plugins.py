"""Your own valuation methods and pipeline steps, registered by name.

Two ways in, both selected by name in the configuration (``valuation.methods``,
``pipeline.steps``) like the built-in ones:

* from a notebook or script: ``wfo_kit.register_method("mine", function)`` /
  ``wfo_kit.register_step("mine", function)``;
* from an installed package, through its entry points, group ``wfo_kit.methods`` or
  ``wfo_kit.steps``, e.g. in its ``pyproject.toml``::

      [project.entry-points."wfo_kit.methods"]
      mine = "my_package.valuation:mine"

A method is ``function(valid_tables, valuation_config) -> wfo_kit.value.MethodResult``; a step is
``function(run_context) -> dict of frames``. Entry points are only listed (their names) when a
configuration is checked, and imported when the method or step is first used. A built-in name
cannot be replaced. An unknown name is a configuration error that lists the known ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

METHOD_GROUP = "wfo_kit.methods"
STEP_GROUP = "wfo_kit.steps"

#: functions registered from code in this process, by group
_REGISTERED: dict[str, dict[str, Callable[..., Any]]] = {METHOD_GROUP: {}, STEP_GROUP: {}}


def _check_name(name: str, builtin: tuple[str, ...] | list[str], what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        msg = f"a {what} name is a Python identifier, got {name!r}"
        raise ValueError(msg)
    if name in builtin:
        msg = f"{name!r} is a built-in {what}: choose another name"
        raise ValueError(msg)


def register_method(name: str, function: Callable[..., Any]) -> None:
    """Make ``function`` the valuation method ``name`` (for ``valuation.methods``).

    ``function(valid, valuation)`` gets the valid input tables (dict of frames) and the
    :class:`~wfo_kit.config.ValuationConfig`, and returns a :class:`~wfo_kit.value.MethodResult`.
    """
    from wfo_kit.config import METHOD_NAMES

    _check_name(name, METHOD_NAMES, "method")
    _REGISTERED[METHOD_GROUP][name] = function


def register_step(name: str, function: Callable[..., Any]) -> None:
    """Make ``function`` the pipeline step ``name`` (for ``pipeline.steps``).

    ``function(ctx)`` gets the :class:`~wfo_kit.pipeline.RunContext` and returns the frames it
    produces (dict name -> DataFrame), which later steps read from the context.
    """
    from wfo_kit.pipeline import BUILTIN_STEPS

    _check_name(name, list(BUILTIN_STEPS), "step")
    _REGISTERED[STEP_GROUP][name] = function


@functools.cache
def _installed(group: str) -> dict[str, EntryPoint]:
    # Scanning the installed distributions costs about 9 ms: once per process (and group).
    # refresh_plugins() forgets them, e.g. after installing a package in a running notebook.
    return {ep.name: ep for ep in entry_points(group=group)}


def refresh_plugins() -> None:
    """Forget the installed entry points read so far (they are read again on next use)."""
    _installed.cache_clear()


def plugin_names(group: str) -> list[str]:
    """Names registered in this process or installed as entry points of ``group``, sorted."""
    return sorted({*_REGISTERED[group], *_installed(group)})


def plugin(group: str, name: str) -> Callable[..., Any] | None:
    """The function registered under ``name`` (code first, then entry points), or None."""
    if name in _REGISTERED[group]:
        return _REGISTERED[group][name]
    point = _installed(group).get(name)
    if point is None:
        return None
    function = point.load()
    if not callable(function):
        msg = f"entry point {name} = {point.value} ({group}) is not a function"
        raise TypeError(msg)
    return function
