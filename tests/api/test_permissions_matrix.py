"""Every endpoint × every role: the API allows exactly what the console's roles allow.

admin: everything; operator: read, run exports, manage groups, own tokens; auditor:
read, audit trail, own tokens; a user with no role: nothing (403); no credentials: 401.
Ids in paths do not exist, so an allowed call answers 200, 400 or 404 — never 401/403.
"""

from __future__ import annotations

import pytest

MISSING = "00000000-0000-4000-8000-000000000000"
ALL = {"admin", "operator", "auditor"}
RUNNERS = {"admin", "operator"}

ENDPOINTS: list[tuple[str, str, set[str]]] = [
    ("get", "/api/v1/tokens/", ALL),
    ("post", "/api/v1/tokens/create", ALL),
    ("post", "/api/v1/tokens/999/revoke", ALL),
    ("get", "/api/v1/clients/", ALL),
    ("get", "/api/v1/clients/nope", ALL),
    ("post", "/api/v1/clients/create", {"admin"}),
    ("post", "/api/v1/clients/nope/disable", {"admin"}),
    ("post", "/api/v1/clients/nope/enable", {"admin"}),
    ("post", "/api/v1/clients/nope/update", {"admin"}),
    ("post", "/api/v1/clients/nope/keys/add", {"admin"}),
    ("post", "/api/v1/clients/nope/keys/retire", {"admin"}),
    ("get", "/api/v1/operators/", {"admin"}),
    ("post", "/api/v1/operators/create", {"admin"}),
    ("get", "/api/v1/operators/999999", {"admin"}),
    ("post", "/api/v1/operators/999999/set-role", {"admin"}),
    ("post", "/api/v1/operators/999999/deactivate", {"admin"}),
    ("post", "/api/v1/operators/999999/reactivate", {"admin"}),
    ("post", "/api/v1/operators/999999/reset-password", {"admin"}),
    ("get", "/api/v1/audit-events/", {"admin", "auditor"}),
    ("get", "/api/v1/exports/", ALL),
    ("post", "/api/v1/exports/launch", RUNNERS),
    ("get", f"/api/v1/exports/{MISSING}", ALL),
    ("post", f"/api/v1/exports/{MISSING}/cancel", RUNNERS),
    ("post", f"/api/v1/exports/{MISSING}/delete", RUNNERS),
    ("get", f"/api/v1/exports/{MISSING}/files/", ALL),
    ("get", f"/api/v1/files/{MISSING}/preview", ALL),
    ("get", "/api/v1/groups/", ALL),
    ("post", "/api/v1/groups/create", RUNNERS),
    ("get", "/api/v1/groups/nope", ALL),
    ("post", "/api/v1/groups/nope/update", RUNNERS),
    ("post", "/api/v1/groups/nope/delete", RUNNERS),
    ("get", "/api/v1/inventory/", ALL),
    ("get", "/api/v1/schedules/", ALL),
    ("post", "/api/v1/schedules/create", RUNNERS),
    ("get", f"/api/v1/schedules/{MISSING}", ALL),
    ("post", f"/api/v1/schedules/{MISSING}/update", RUNNERS),
    ("post", f"/api/v1/schedules/{MISSING}/pause", RUNNERS),
    ("post", f"/api/v1/schedules/{MISSING}/resume", RUNNERS),
    ("post", f"/api/v1/schedules/{MISSING}/run", RUNNERS),
    ("post", f"/api/v1/schedules/{MISSING}/delete", RUNNERS),
    ("get", "/api/v1/deliveries/", ALL),
    ("post", "/api/v1/deliveries/create", RUNNERS),
    ("get", f"/api/v1/deliveries/{MISSING}", ALL),
    ("post", f"/api/v1/deliveries/{MISSING}/complete", RUNNERS),
    ("post", f"/api/v1/deliveries/{MISSING}/stop", RUNNERS),
]


DENIED = {"status": 403, "code": "permission_denied", "detail": "Your role does not allow this."}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "operator", "auditor", None])
def test_role_matrix(api_as, role):
    """One operator per role walks every endpoint (one login, not one per endpoint)."""
    api = api_as(role)
    wrong = []
    for method, path, allowed in ENDPOINTS:
        response = getattr(api, method)(path)
        if role in allowed:
            ok = response.status_code in (200, 400, 404)
        else:
            ok = response.status_code == 403 and response.json() == DENIED
        if not ok:
            wrong.append((method, path, response.status_code, response.content[:200]))
    assert wrong == []


@pytest.mark.django_db
def test_anonymous_callers_get_401_everywhere(anonymous):
    statuses = {(m, p): getattr(anonymous, m)(p).status_code for m, p, _ in ENDPOINTS}
    assert set(statuses.values()) == {401}


def test_every_api_url_is_in_the_matrix():
    from django.urls import get_resolver

    api = get_resolver().namespace_dict["api"][1]
    assert len(api.url_patterns) == len(ENDPOINTS)
