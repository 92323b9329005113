"""Top-level URLs. Each app that has web pages exposes ``phm.<app>.urls``; each app with API
endpoints exposes ``phm.<app>.api_urls`` (mounted under /api/v1/). Apps plug in by adding
those modules, without editing this file."""

from __future__ import annotations

import importlib.util

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

API_APPS = ("api", "sources", "analytics", "backtests", "condition", "alarms", "assistant")
PAGE_APPS = ("analytics", "backtests", "condition", "alarms", "assistant", "sources", "dashboard")
#: API modules beside an app's ``api_urls`` (one app, several concerns), mounted under /api/v1/ too.
EXTRA_API_MODULES = ("phm.condition.classification_api_urls",)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
urlpatterns += [path("api/v1/", include(f"phm.{app}.api_urls")) for app in API_APPS if _has_module(f"phm.{app}.api_urls")]
urlpatterns += [path("api/v1/", include(module)) for module in EXTRA_API_MODULES]
urlpatterns += [path("", include(f"phm.{app}.urls")) for app in PAGE_APPS if _has_module(f"phm.{app}.urls")]
