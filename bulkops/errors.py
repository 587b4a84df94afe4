"""Exceptions every layer may raise and the shared web plumbing knows how to answer."""


class InvalidRequest(ValueError):
    """A service refused input it cannot act on, and changed nothing. The text is meant
    for the person who sent the input: the operator API answers it as a 400."""
