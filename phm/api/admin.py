"""API tokens in the admin, write-only like every other secret: the list shows only the first
characters of each key; a new token's key is shown once, in the message after it is created
(the operator of a SCADA client copies it then), and never again."""

from __future__ import annotations

from django.contrib import admin, messages
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

#: Characters of a key shown in lists: enough to tell tokens apart, far too few to use one.
SHOWN_PREFIX = 4


class WriteOnlyTokenAdmin(TokenAdmin):
    list_display = ("masked_key", "user", "created")

    @admin.display(description="key")
    def masked_key(self, token) -> str:
        return f"{token.key[:SHOWN_PREFIX]}…"

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(request, f"API token for {obj.user}: {obj.key} (shown once; copy it now)")


def _token_title(token: TokenProxy) -> str:
    return f"API token of {token.user} ({token.key[:SHOWN_PREFIX]}…)"


# TokenProxy exists only for this admin; its str() (the full key, from Token) is what the admin
# puts in page titles, breadcrumbs and the delete confirmation. Token itself is unchanged.
TokenProxy.__str__ = _token_title
admin.site.unregister(TokenProxy)
admin.site.register(TokenProxy, WriteOnlyTokenAdmin)
