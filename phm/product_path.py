"""What the product-path evaluations (``python -m phm.skab_product``, ``phm.cwru_product``,
``phm.cmapss_product``) share: they drive the app through its REST API as an engineer would."""

from __future__ import annotations


def engineer_api_client(username: str):
    """An API client signed in as ``username`` in the engineer role."""
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    user, _ = User.objects.get_or_create(username=username)
    # get_or_create: the role groups come from a migration, which a flushed test database has lost.
    user.groups.add(Group.objects.get_or_create(name="engineer")[0])
    client = APIClient()
    client.force_authenticate(user)
    return client


def checked_json(response, what: str) -> dict:
    """The response's JSON; an error status raises, naming the call and the answer."""
    if response.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.content[:500]!r}")
    return response.json()
