"""The router impairs each direction on its own: the names of the two, and of both."""

from __future__ import annotations

TO_SERVER = "to-server"
TO_CLIENT = "to-client"
BOTH = "both"

DIRECTIONS: tuple[str, str] = (TO_SERVER, TO_CLIENT)
"""The two directions, client -> server first."""


def expand(direction: str) -> tuple[str, ...]:
    """The directions that `direction` ("both", "to-server" or "to-client") names.

    Raises ValueError naming the bad value and the accepted ones.
    """
    if direction == BOTH:
        return DIRECTIONS
    if direction in DIRECTIONS:
        return (direction,)
    raise ValueError(f"direction: must be one of {BOTH}, {', '.join(DIRECTIONS)}, got {direction!r}")
