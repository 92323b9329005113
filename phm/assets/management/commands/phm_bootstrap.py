"""``python manage.py phm_bootstrap``: make sure an administrator (with an API token) and the demo
users ``operator`` and ``engineer`` exist, and print how to log in. The admin password comes from
PHM_ADMIN_PASSWORD, or is generated once; generated passwords are kept in var/<user>-password
(readable by the owner only)."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create the admin user and API token if missing; print the URL and login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("PHM_ADMIN_USER", "admin"))
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, username: str, url: str, **options):
        password = os.environ.get("PHM_ADMIN_PASSWORD") or self._stored_password("admin")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        if created or os.environ.get("PHM_ADMIN_PASSWORD"):
            user.set_password(password)
            user.save()
        token, _ = Token.objects.get_or_create(user=user)
        role_logins = [self._role_user(role) for role in ("operator", "engineer")]
        self.stdout.write(
            "\n"
            f"  PHM platform ready at {url}\n"
            f"  login:     {username} / {password}   (also {', '.join(role_logins)})\n"
            f"  API token: {token.key}\n"
            f"  try:       curl -H 'Authorization: Token {token.key}' {url}api/v1/sensors/P-101.VIB/readings?start=...&end=...\n"
            f"  API docs:  {url}api/docs/\n"
        )

    def _role_user(self, role: str) -> str:
        """A demo user in the role's group (created by phm/dashboard's migration), password kept in var/."""
        password = self._stored_password(role)
        user, created = get_user_model().objects.get_or_create(username=role)
        if created:
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get_or_create(name=role)[0]])
        return f"{role} / {password}"

    def _stored_password(self, name: str) -> str:
        path = settings.DATA_ROOT / f"{name}-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()
