"""Exceptions that reach the user. Each carries the exit code the CLI uses."""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass


class OptbenchError(Exception):
    """Base class for errors optbench reports to the user as one clear line."""

    exit_code = 1


class UsageError(OptbenchError):
    """Bad input from the user (a recipe, a flag, a name). Exit code 2, nothing written."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe value that is missing, unknown or out of range, with its path in the recipe."""

    def __init__(self, path: str, message: str, suggestion: str | None = None) -> None:
        self.path = path
        self.message = message
        self.suggestion = suggestion
        text = f"{path}: {message}" if path else message
        if suggestion:
            text += f" (did you mean '{suggestion}'?)"
        super().__init__(text)


class PluginNotFound(UsageError):
    """A backend, transform, workload, meter or model name that is not registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        self.suggestion = closest(name, self.choices)
        text = f"unknown {kind} '{name}'"
        if self.suggestion:
            text += f"; did you mean '{self.suggestion}'?"
        text += f" (known: {', '.join(self.choices)})"
        super().__init__(text)


class RegistryError(OptbenchError):
    """A plugin that cannot be registered or loaded (name collision, wrong base class)."""


class Unavailable(OptbenchError):
    """A backend, meter or transform that cannot run here; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The most similar choice to `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


@dataclass(frozen=True)
class Availability:
    """Whether something can run here, and if not, why (in words a user can act on)."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> Availability:
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)

    def __bool__(self) -> bool:
        return self.ok


def module_availability(*modules: str, extra: str) -> Availability:
    """Available when every module can be found (without importing it)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        return Availability.no(
            f"python package(s) {', '.join(missing)} not installed; "
            f"install with: pip install 'optbench[{extra}]'"
        )
    return Availability.yes()
