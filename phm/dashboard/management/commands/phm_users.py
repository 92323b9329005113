"""Demo accounts for the web pages: ``operator`` and ``engineer`` (and ``admin`` with --admin),
each in its role group, with a fresh random password printed once."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from phm.dashboard import roles


class Command(BaseCommand):
    help = "Create or reset the demo users operator / engineer (and admin) and print their passwords."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--admin", action="store_true", help="also create a superuser 'admin'")
        parser.add_argument("--password", help="use this password for every user instead of random ones")

    def handle(self, *args, admin: bool = False, password: str | None = None, **options) -> None:
        names = [roles.OPERATOR, roles.ENGINEER] + ([roles.ADMIN] if admin else [])
        user_model = get_user_model()
        for name in names:
            group, _ = Group.objects.get_or_create(name=name)
            user, created = user_model.objects.get_or_create(username=name)
            secret = password or secrets.token_urlsafe(9)
            user.set_password(secret)
            user.is_staff = user.is_superuser = name == roles.ADMIN
            user.save()
            user.groups.set([group])
            self.stdout.write(f"{'created' if created else 'reset'} {name:<9} password: {secret}")
