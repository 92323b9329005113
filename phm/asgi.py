"""ASGI entry point (streaming responses such as the chat page)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "phm.settings")
application = get_asgi_application()
