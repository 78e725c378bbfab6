"""How a long step tells the operator what it is doing: a callable that takes one line (cli.say, a log, nothing)."""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str], None]
