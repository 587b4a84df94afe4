"""The sign-in pages show only what works: no sign-up (nobody signs up), and "Forgot your
password?" only where bulkops can send mail; without mail the reset pages say to ask an
admin instead of failing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from accounts.services import create_operator

pytestmark = pytest.mark.django_db

SIGN_IN_PAGES = (
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/accounts/password/reset/done/",
)


@pytest.fixture
def without_mail(settings):
    settings.BULKOPS_PASSWORD_RESET_BY_EMAIL = False  # BULKOPS_EMAIL_URL unset


@pytest.fixture
def with_mail(settings):
    settings.BULKOPS_PASSWORD_RESET_BY_EMAIL = True  # BULKOPS_EMAIL_URL set; tests keep locmem


def test_login_page_without_mail_links_neither_sign_up_nor_password_reset(without_mail):
    page = Client().get("/accounts/login/").content.decode()
    assert 'name="password"' in page
    assert "/accounts/signup/" not in page and "sign up" not in page.lower()
    assert "/accounts/password/reset/" not in page and "Forgot your password?" not in page


def test_login_page_with_mail_offers_password_reset_but_no_sign_up(with_mail):
    page = Client().get("/accounts/login/").content.decode()
    assert '<a href="/accounts/password/reset/">Forgot your password?</a>' in page
    assert "/accounts/signup/" not in page and "sign up" not in page.lower()


@pytest.mark.parametrize("mail_configured", [False, True])
def test_no_sign_in_page_links_to_sign_up(settings, mail_configured):
    settings.BULKOPS_PASSWORD_RESET_BY_EMAIL = mail_configured
    for url in SIGN_IN_PAGES:
        response = Client().get(url)
        assert response.status_code == 200, url
        assert b'href="/accounts/signup/' not in response.content, url


def test_sign_up_answers_a_clear_closed_page_and_creates_nobody():
    client = Client()
    page = client.get("/accounts/signup/")
    assert page.status_code == 200
    assert "an admin creates operator accounts" in page.content.decode()
    answer = client.post(
        "/accounts/signup/",
        {"username": "mallory", "password1": "Xk2!long-pass", "password2": "Xk2!long-pass"},
    )
    assert answer.status_code == 200 and b"Sign Up Closed" in answer.content
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_password_reset_without_mail_says_ask_an_admin_and_sends_nothing(without_mail):
    create_operator(username="ada", role="operator", email="ada@example.org")
    client = Client()
    for response in (
        client.get("/accounts/password/reset/"),
        client.post("/accounts/password/reset/", {"email": "ada@example.org"}),
        client.get("/accounts/password/reset/done/"),
    ):
        assert response.status_code == 200
        text = response.content.decode()
        assert "Ask an admin to reset your password" in text
        assert 'name="email"' not in text
    assert mail.outbox == []
