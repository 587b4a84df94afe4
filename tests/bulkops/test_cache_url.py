"""BULKOPS_CACHE_URL: the operator API's throttles count across every web process
sharing the Redis it names; without it each process counts alone."""

from __future__ import annotations

import re
from contextlib import ExitStack

import pytest
from django.core.exceptions import ImproperlyConfigured

from bulkops.cache_url import LOCAL, cache_from_url
from tests.faults.deployment import Redis
from tests.processes import http_get, manage, process_env, web_server


def test_the_password_stays_out_of_the_location():
    cache = cache_from_url("rediss://ops:p%40ss@[fd00::5]:6380/3")
    assert cache["LOCATION"] == "rediss://[fd00::5]:6380/3"
    assert cache["OPTIONS"] == {"password": "p@ss", "username": "ops"}
    assert cache_from_url("") == LOCAL


@pytest.mark.parametrize("url", ["memcached://cache:11211", "redis://", "cache.internal"])
def test_other_urls_are_refused_naming_the_variable(url):
    with pytest.raises(ImproperlyConfigured, match="BULKOPS_CACHE_URL"):
        cache_from_url(url)


@pytest.fixture
def redis():
    server = Redis()
    server.start()
    yield server
    server.kill()


def api_calls_through_two_web_processes(tmp_path, **settings: str) -> list[int]:
    """Statuses of four calls by one operator, two to each of two gunicorn processes,
    with a limit of three calls a minute."""
    env = process_env(tmp_path, BULKOPS_API_THROTTLE_USER="3/minute", **settings)
    for command in (
        ["migrate", "--no-input"],
        ["create_operator", "--username", "ada", "--role", "auditor"],
        ["create_api_token", "--username", "ada", "--name", "script"],
    ):
        result = manage(env, *command)
        assert result.returncode == 0, result.stderr
    token = re.search(r"\(shown once\): (\S+)", result.stdout).group(1)
    with ExitStack() as stack:
        bases = [stack.enter_context(web_server(env)) for _ in range(2)]
        return [
            http_get(f"{base}/api/v1/inventory/", headers={"Authorization": f"Token {token}"})[0]
            for base in (bases[0], bases[0], bases[1], bases[1])
        ]


def test_a_shared_cache_holds_the_rate_across_web_processes(tmp_path, redis):
    assert api_calls_through_two_web_processes(tmp_path, BULKOPS_CACHE_URL=redis.url) == [
        200,
        200,
        200,
        429,
    ]


def test_without_it_each_web_process_counts_alone(tmp_path):
    assert api_calls_through_two_web_processes(tmp_path) == [200, 200, 200, 200]
