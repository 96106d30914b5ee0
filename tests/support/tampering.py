"""Changing a signed token so that its signature really changes."""

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def tampered(token: str, position: int = -2) -> str:
    """The token with one base64 character's highest bit flipped.

    A low bit of the last base64 character may be padding: changing only that character can
    decode to the same signature, and the "tampered" token would still verify.
    """
    index = position % len(token)
    changed = BASE64URL[BASE64URL.index(token[index]) ^ 0b100000]
    return token[:index] + changed + token[index + 1 :]
