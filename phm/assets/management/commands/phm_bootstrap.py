"""``python manage.py phm_bootstrap``: make sure an administrator and an API token exist, and
print how to log in. The password comes from PHM_ADMIN_PASSWORD, or is generated once and kept
in var/admin-password (readable by the owner only)."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the admin user and API token if missing; print the URL and login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("PHM_ADMIN_USER", "admin"))
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, username: str, url: str, **options):
        password = os.environ.get("PHM_ADMIN_PASSWORD") or self._stored_password()
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        if created or os.environ.get("PHM_ADMIN_PASSWORD"):
            user.set_password(password)
            user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(
            "\n"
            f"  PHM platform ready at {url}\n"
            f"  login:     {username} / {password}\n"
            f"  API token: {token.key}\n"
            f"  try:       curl -H 'Authorization: Token {token.key}' {url}api/v1/sensors/P-101.VIB/readings?start=...&end=...\n"
            f"  API docs:  {url}api/docs/\n"
        )

    def _stored_password(self) -> str:
        path = settings.DATA_ROOT / "admin-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()
