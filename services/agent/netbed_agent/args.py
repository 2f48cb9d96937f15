"""Typed access to a request's arguments, rejecting unknown keys by name."""

from __future__ import annotations

import base64
import binascii
import builtins
import math
from typing import TYPE_CHECKING, Any

from .errors import RequestError
from .limits import MAX_TIMEOUT_S

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Args", "MAX_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "INT64_MIN", "INT64_MAX", "b64"]

DEFAULT_TIMEOUT_S = 5.0
#: Integer arguments without a stricter range must fit in a signed 64-bit
#: integer, so no C call downstream overflows (an overflow is the client's error).
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


class Args:
    """The `args` object of one request.

    Every accessor marks its key as used; `finish()` then rejects any key that
    no accessor asked for, naming it, so a misspelt argument is an error rather
    than silently ignored.
    """

    def __init__(self, op: builtins.str, raw: Any, session: Session | None = None) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise RequestError(f"{op}: 'args' must be a JSON object, got {type(raw).__name__}")
        self.op = op
        self._session = session
        self._raw: dict[builtins.str, Any] = raw
        self._used: set[builtins.str] = set()

    @property
    def session(self) -> Session:
        """The connection this request came on (owner of what it creates)."""
        if self._session is None:
            raise RequestError(f"{self.op}: needs a connection's session", kind="bad_request")
        return self._session

    def _get(self, key: builtins.str, default: Any, required: builtins.bool) -> Any:
        self._used.add(key)
        if key not in self._raw or self._raw[key] is None:
            if required:
                raise RequestError(f"{self.op}: missing argument '{key}'")
            return default
        return self._raw[key]

    def has(self, key: builtins.str) -> builtins.bool:
        return key in self._raw and self._raw[key] is not None

    def int(self, key: builtins.str, default: builtins.int | None = None, *, required: builtins.bool = False,
            minimum: builtins.int | None = None, maximum: builtins.int | None = None) -> builtins.int:
        value = self._get(key, default, required)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int):
            raise RequestError(f"{self.op}: argument '{key}' must be an integer, got {value!r}")
        minimum = INT64_MIN if minimum is None else minimum
        maximum = INT64_MAX if maximum is None else maximum
        if value < minimum:
            raise RequestError(f"{self.op}: argument '{key}' must be >= {minimum}, got {value}")
        if value > maximum:
            raise RequestError(f"{self.op}: argument '{key}' must be <= {maximum}, got {value}")
        return value

    def opt_int(self, key: builtins.str, **kw: Any) -> builtins.int | None:
        if not self.has(key):
            self._used.add(key)
            return None
        return self.int(key, **kw)

    def float(self, key: builtins.str, default: builtins.float | None = None, *, required: builtins.bool = False,
              minimum: builtins.float = 0.0, maximum: builtins.float | None = None) -> builtins.float:
        value = self._get(key, default, required)
        if isinstance(value, builtins.bool) or not isinstance(value, (builtins.int, builtins.float)):
            raise RequestError(f"{self.op}: argument '{key}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise RequestError(f"{self.op}: argument '{key}' must be a finite number, got {value!r}")
        if value < minimum:
            raise RequestError(f"{self.op}: argument '{key}' must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise RequestError(f"{self.op}: argument '{key}' must be <= {maximum}, got {value}")
        return float(value)

    def timeout(self, default: builtins.float = DEFAULT_TIMEOUT_S) -> builtins.float:
        """The operation's timeout in seconds (`timeout` argument)."""
        return self.float("timeout", default, maximum=MAX_TIMEOUT_S)

    def str(self, key: builtins.str, default: builtins.str | None = None, *,
            required: builtins.bool = False) -> builtins.str:
        value = self._get(key, default, required)
        if not isinstance(value, builtins.str):
            raise RequestError(f"{self.op}: argument '{key}' must be a string, got {value!r}")
        return value

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        value = self._get(key, default, False)
        if not isinstance(value, builtins.bool):
            raise RequestError(f"{self.op}: argument '{key}' must be true or false, got {value!r}")
        return value

    def bytes(self, key: builtins.str, *, required: builtins.bool = True) -> builtins.bytes:
        """A base64-encoded bytes argument."""
        value = self._get(key, None, required)
        if value is None:
            return b""
        if not isinstance(value, builtins.str):
            raise RequestError(f"{self.op}: argument '{key}' must be base64 text")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise RequestError(f"{self.op}: argument '{key}' is not valid base64: {exc}") from None

    def raw(self, key: builtins.str, default: Any = None, *, required: builtins.bool = False) -> Any:
        return self._get(key, default, required)

    def finish(self) -> None:
        unknown = sorted(set(self._raw) - self._used)
        if unknown:
            raise RequestError(f"{self.op}: unknown argument(s) {', '.join(map(repr, unknown))}")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
