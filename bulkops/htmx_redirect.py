"""Where a console form goes next, whether the browser or htmx sent it.

A destructive button's confirmation is htmx's (`hx-confirm`), so htmx sends that form
(`hx-post`); a plain 302 would then be followed inside the XHR and its page swapped into
the form. htmx is told to navigate instead (HX-Redirect).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect


def redirect_after_form(request: HttpRequest, view: str, **kwargs: object) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(reverse(view, kwargs=kwargs or None))
    return redirect(view, **kwargs)
