"""Who may write and who may ask: the two optional keys, checked the same way everywhere.

The REST routes, the Gradio UI's own events and the Gradio API all call these functions, so a
key can never be enforced on one path and forgotten on another. Comparisons run in constant time
(``hmac.compare_digest``): a timing difference must not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac

from rag.config import Settings


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme is case-insensitive (RFC 7235)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def key_matches(given: str | None, expected: str | None) -> bool:
    """True when ``given`` equals ``expected``; compared as UTF-8 bytes in constant time."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def may_write(settings: Settings, given: str | None) -> bool:
    """Adding, replacing or deleting documents: open when no API key is set."""
    return not settings.api_key or key_matches(given, settings.api_key)


def may_read(settings: Settings, given: str | None) -> bool:
    """Asking and searching: open unless a read key is set; the API key works as a read key too."""
    if not settings.read_key:
        return True
    return key_matches(given, settings.read_key) or key_matches(given, settings.api_key)
