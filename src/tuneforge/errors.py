"""User-facing errors: the CLI prints these as one clear line, without a traceback."""

from __future__ import annotations


class TuneforgeError(Exception):
    """An error the user can fix (bad input, bad config, missing dependency)."""


class ConfigError(TuneforgeError):
    """A configuration key or value is wrong; the message names the key."""


class DataError(TuneforgeError):
    """A record of input data is malformed; `where` is `file:line`."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class MissingDependency(TuneforgeError):
    def __init__(self, package: str, extra: str | None = None, purpose: str = ""):
        hint = f"pip install 'tuneforge[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the optional package '{package}' is not installed{what}: {hint}")
