"""Lazy plugin registries.

Built-ins are registered as "module:Class" strings so that nothing is imported until a
plugin is used; third-party packages add entries under the entry-point groups
`optbench.backends`, `optbench.transforms`, `optbench.workloads` and `optbench.meters`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from optbench.errors import PluginNotFound, RegistryError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One registered plugin: its canonical name, import target and aliases."""

    name: str
    target: str
    aliases: tuple[str, ...] = ()
    origin: str = "builtin"
    summary: str = ""
    hidden: bool = False  # resolvable by name, but not listed or suggested (test doubles)


@dataclass
class Registry(Generic[T]):
    """Name -> plugin class, resolved lazily and checked against a base class on load."""

    kind: str
    base: str
    group: str
    entry_points: Callable[..., Iterable[Any]] = field(default=metadata.entry_points, repr=False)
    _entries: dict[str, Entry] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)
    _loaded: dict[str, type] = field(default_factory=dict)
    _discovered: bool = False

    def register(
        self,
        name: str,
        target: str,
        aliases: tuple[str, ...] = (),
        origin: str = "builtin",
        summary: str = "",
        hidden: bool = False,
    ) -> None:
        """Add a plugin; a name or alias that is already taken is an error."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                owner = self._entries.get(key) or self._entries[self._aliases[key]]
                raise RegistryError(
                    f"{self.kind} name '{key}' from {origin} collides with {owner.origin} "
                    f"plugin '{owner.name}'"
                )
        if ":" not in target:
            raise RegistryError(f"{self.kind} '{name}': target '{target}' is not 'module:Class'")
        self._entries[name] = Entry(name, target, tuple(aliases), origin, summary, hidden)
        for alias in aliases:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The canonical name for `name` or one of its aliases (case-insensitive)."""
        self._discover()
        key = name.strip().lower()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        raise PluginNotFound(self.kind, name, self.names(with_aliases=True))

    def entry(self, name: str) -> Entry:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> type[T]:
        """Import and return the plugin class registered under `name`."""
        canonical = self.canonical(name)
        if canonical not in self._loaded:
            self._loaded[canonical] = self._import(self._entries[canonical])
        return self._loaded[canonical]

    def names(self, with_aliases: bool = False, include_hidden: bool = False) -> list[str]:
        """Registered names (hidden ones only when asked), optionally with their aliases."""
        self._discover()
        names = [n for n, e in self._entries.items() if include_hidden or not e.hidden]
        if with_aliases:
            names += [a for a, n in self._aliases.items() if n in names]
        return sorted(names)

    def entries(self, include_hidden: bool = False) -> list[Entry]:
        return [self._entries[n] for n in self.names(include_hidden=include_hidden)]

    def _import(self, entry: Entry) -> type:
        module_name, _, attr = entry.target.partition(":")
        module = importlib.import_module(module_name)
        try:
            plugin = getattr(module, attr)
        except AttributeError as exc:
            raise RegistryError(f"{self.kind} '{entry.name}': {entry.target} not found") from exc
        base = _resolve(self.base)
        if not (isinstance(plugin, type) and issubclass(plugin, base)):
            raise RegistryError(
                f"{self.kind} '{entry.name}' ({entry.target}) is not a subclass of {self.base}"
            )
        return plugin

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for ep in self.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist else "unknown distribution"
            self.register(ep.name.lower(), ep.value, origin=f"entry point of {dist}")
            log.debug("discovered %s plugin %s from %s", self.kind, ep.name, dist)


def _resolve(target: str) -> type:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
