"""Errors a user can act on: each names what was wrong and how to fix it."""

from __future__ import annotations


class DeployError(Exception):
    """A failure caused by input or environment, reported to the user with a fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return self.problem if self.fix is None else f"{self.problem}\n  fix: {self.fix}"


class ConfigError(DeployError):
    """Settings from `.env` or the environment are invalid."""
