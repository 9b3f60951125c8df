"""API keys that cannot leak by accident: no repr, str, format or log line shows them."""

from __future__ import annotations


class Secret:
    """Holds a key; only :meth:`reveal` gives it back, at the one place a request needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the key blanked, for messages built from what a provider sent back
        (some APIs echo the key they refused)."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
