"""Limit/offset pagination with bounds.

DRF's ``LimitOffsetPagination`` passes any integer to the database slice: ``?limit=2**63``
overflowed SQLite's int64 (500), and with no ``max_limit`` one call could ask for every row.
Here ``limit`` must be 1..``PHM_API_MAX_PAGE`` and ``offset`` 0..``MAX_OFFSET``; anything else
is a 400 that names the parameter and the allowed range. The OpenAPI schema states the same
bounds, so generated clients (and the fuzzing test) know them.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

#: Far past any table this platform keeps, far below int64.
MAX_OFFSET = 10**12


def _bounded_int(raw: str, *, name: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError({name: f"must be an integer from {low} to {high}, got {raw[:40]!r}"}) from None
    if not low <= value <= high:
        raise ValidationError({name: f"must be from {low} to {high}, got {raw[:40]}"})
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # read per request so tests (and settings overrides) take effect
        return settings.PHM_API_MAX_PAGE

    @property
    def default_limit(self) -> int:
        return min(settings.REST_FRAMEWORK.get("PAGE_SIZE") or 100, self.max_limit)

    def get_limit(self, request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        return _bounded_int(raw, name=self.limit_query_param, low=1, high=self.max_limit)

    def get_offset(self, request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        return _bounded_int(raw, name=self.offset_query_param, low=0, high=MAX_OFFSET)

    def paginate_queryset(self, queryset, request, view=None):
        # Validate both parameters before counting, so a bad offset is a 400 even on an empty table.
        self.get_offset(request)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_limit})
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update({"minimum": 0, "maximum": MAX_OFFSET})
        return parameters
