from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class ClosedSignupAdapter(DefaultAccountAdapter):
    """Operators are created by an admin or `create_operator`; nobody signs up."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False
