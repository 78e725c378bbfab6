"""Task flags: the text a user typed, parsed into the value the package takes, or one error naming the flag.

Invoke converts `int`/`float` task arguments itself, and a value such as `--lines x` then ends in a traceback
inside its parser; so every task argument reaches the task as the text typed and is parsed here. One rule for
numbers across the tasks: a count is a whole number from 1 (0 never means "unlimited": leaving the flag out
does), and 0 means "off" only for a rate or threshold declared with `off=True`, whose help says so. Every range
is bounded, and each flag's help is built from the same declaration that checks it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from temporal_dsql_deploy.errors import DeployError

Option = TypeVar("Option", bound=str)
SHOWN_CHARACTERS = 40  # a value pasted by mistake (a whole file) is not echoed back in full


def _shown(text: str) -> str:
    quoted = repr(text)  # escapes included: a control character is shown, never sent to the terminal
    return quoted if len(quoted) <= SHOWN_CHARACTERS else f"{quoted[:SHOWN_CHARACTERS]}…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"


@dataclass(frozen=True)
class Flag(ABC):
    """A task flag's parser: its name, the values it accepts (stated in its help and its errors)."""

    flag: str
    note: str = field(default="", kw_only=True)  # said in the help and the fix, e.g. what leaving it out means

    @property
    @abstractmethod
    def accepts(self) -> str: ...

    @abstractmethod
    def parse(self, text: str) -> object:
        """The value `text` stands for, or a DeployError naming the flag, the value and what it accepts."""

    def help(self, meaning: str, default: str = "") -> str:
        """The flag's help: what it means, what it accepts (the range checked), its default."""
        given = f"{meaning}: {self.accepts}" + (f" (default {default})" if default else "")
        return given + (f"; {self.note}" if self.note else "") + "."

    def refused(self, text: str) -> DeployError:
        return DeployError(f"{self.flag} {_shown(text)} is not {self.accepts}",
                           f"give {self.flag} {self.accepts}" + (f"; {self.note}" if self.note else ""))  # fmt: skip


@dataclass(frozen=True)
class Count(Flag):
    """A whole number from `minimum` (at least 1) to `maximum`."""

    maximum: int
    minimum: int = 1

    @property
    def accepts(self) -> str:
        return f"a whole number from {self.minimum:,} to {self.maximum:,}"

    def parse(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also the digit limit of int() for a pasted wall of digits
            raise self.refused(text) from None
        if not self.minimum <= value <= self.maximum:
            raise self.refused(text)
        return value


@dataclass(frozen=True)
class Amount(Flag):
    """A finite number of `unit` from `minimum` to `maximum`; with `off`, also 0, meaning off."""

    minimum: float
    maximum: float
    unit: str
    off: bool = False

    @property
    def accepts(self) -> str:
        span = f"a number of {self.unit} from {_number(self.minimum)} to {_number(self.maximum)}"
        return f"0 (off) or {span}" if self.off else span

    def parse(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.refused(text) from None
        if self.off and value == 0:
            return 0.0
        if not self.minimum <= value <= self.maximum:  # also refuses nan and inf
            raise self.refused(text)
        return value


@dataclass(frozen=True)
class Choice(Flag, Generic[Option]):
    """One of a fixed set of words (a Literal type's values)."""

    options: tuple[Option, ...]

    @property
    def accepts(self) -> str:
        return f"one of: {', '.join(self.options)}"

    def parse(self, text: str) -> Option:
        for option in self.options:
            if text == option:
                return option
        raise self.refused(text)


@dataclass(frozen=True)
class Choices(Flag, Generic[Option]):
    """Several of a fixed set of words, comma-separated, each once, in the order given."""

    options: tuple[Option, ...]

    @property
    def accepts(self) -> str:
        return f"one or more of {', '.join(self.options)} (comma-separated)"

    def parse(self, text: str) -> tuple[Option, ...]:
        chosen: list[Option] = []
        for word in text.split(","):
            option = next((option for option in self.options if option == word.strip()), None)
            if option is None or option in chosen:
                raise self.refused(text)
            chosen.append(option)
        return tuple(chosen)


@dataclass(frozen=True)
class Text(Flag):
    """Free text (a path, a name, a version) that the package checks; here only: given means not blank.

    Its argument defaults to None, so `--service ""` is told apart from no `--service` at all and is refused
    rather than taken as "every service"; not given, it is "" for the package, which then uses its default.
    """

    what: str

    @property
    def accepts(self) -> str:
        return f"{self.what} (not blank)"

    def refused(self, text: str) -> DeployError:
        return DeployError(f"{self.flag} {_shown(text)} is blank",
                           f"give {self.flag} {self.what}" + (f"; {self.note}" if self.note else ""))  # fmt: skip

    def parse(self, text: str | None) -> str:
        if text is None:
            return ""
        if not text.strip():
            raise self.refused(text)
        return text
