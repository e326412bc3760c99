"""The one error family for bad input: every registry and every check before training raises a
`ConfigError` (or a child), so the app, `execute` and the sweep's pre-flight catch one type.

Messages say what was wrong and what is allowed (close names, valid ranges), because the person
reading them is in the middle of a sweep and wants the fix, not a traceback.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration that cannot run: bad name, bad parameter, model/data mismatch, missing data."""


class UnknownNameError(ConfigError):
    """An unknown plug-in name; the message suggests close matches and lists all names."""


class ParameterError(ConfigError):
    """A parameter that does not exist, has the wrong type, or is out of range."""


class ParameterTypeError(ParameterError, TypeError):
    """A parameter of the wrong type, or one the plug-in does not take: a TypeError too, as Python
    raises for a wrong argument, so callers catching either family see it."""
