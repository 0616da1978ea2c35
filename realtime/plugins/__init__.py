"""Plugins for the live host, and the registry that finds them.

Built-in plugins: ``isolator`` (the model), ``mix`` (vocals/instrumental
balance, karaoke), ``gain``, ``gate``, ``resample`` and ``meter``. Third-party
plugins register a class (or factory) under the entry-point group
``deepiso.plugins``::

    [options.entry_points]
    deepiso.plugins =
        reverb = mypackage.reverb:Reverb

and are then created by name with :func:`create_plugin`. The plugin contract
is documented in :mod:`deepiso.realtime.host`.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from ..chain import Plugin, PluginError

ENTRY_POINT_GROUP = "deepiso.plugins"

#: The built-ins, also registered as entry points in setup.cfg; listed here so
#: they work from a source tree that was never installed.
BUILTIN: dict[str, str] = {
    "isolator": "deepiso.realtime.plugins.isolator:Isolator",
    "mix": "deepiso.realtime.plugins.basic:Mix",
    "gain": "deepiso.realtime.plugins.basic:Gain",
    "gate": "deepiso.realtime.plugins.basic:Gate",
    "meter": "deepiso.realtime.plugins.basic:Meter",
    "resample": "deepiso.realtime.plugins.resample:Resample",
}


def available_plugins() -> dict[str, str]:
    """Plugin name → ``module:attribute`` for every built-in and installed plugin."""
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def plugin_factory(name: str) -> Any:
    """The class (or factory) registered under ``name``; :class:`PluginError` if there is none."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name and name not in BUILTIN:
            try:
                return ep.load()
            except Exception as exc:
                raise PluginError(f"plugin {name!r} ({ep.value}) cannot be loaded: {exc}") from exc
    target = BUILTIN.get(name)
    if target is None:
        raise PluginError(f"no plugin named {name!r}; available: {', '.join(sorted(available_plugins()))}")
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def create_plugin(name: str, **options: Any) -> Any:
    """Create the plugin registered under ``name`` with ``options``."""
    factory = plugin_factory(name)
    try:
        return factory(**options)
    except PluginError:
        raise
    except TypeError as exc:
        raise PluginError(f"plugin {name!r}: bad options {sorted(options)}: {exc}") from exc


__all__ = ["ENTRY_POINT_GROUP", "Plugin", "PluginError", "available_plugins", "create_plugin", "plugin_factory"]
