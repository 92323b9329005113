"""Timestamps stored as integer microseconds since the Unix epoch (UTC).

Why not DateTimeField: readings are the bulk of the database. An int64 key is compact and
identical on SQLite and PostgreSQL, bulk writers can produce it without going through the ORM,
and server-side downsampling becomes integer division (``(ts - start) / bucket``) in portable
SQL. The ORM still sees aware ``datetime`` objects in and out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.functional import cached_property

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


def datetime_to_us(value: datetime) -> int:
    """Exact conversion of an aware datetime to epoch microseconds (no float rounding)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value.isoformat()} has no time zone")
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_datetime(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


class EpochMicrosecondsField(models.BigIntegerField):
    description = "Aware datetime stored as microseconds since 1970-01-01 UTC"

    @cached_property
    def validators(self):
        # IntegerField adds the database's integer range validators, which would compare an
        # aware datetime with an int (TypeError in full_clean, and DRF turns them into
        # min_value/max_value arguments a DateTimeField does not take). The range of a
        # datetime (years 1..9999) fits int64 microseconds, so they add nothing.
        return [*self.default_validators, *self._validators]

    def from_db_value(self, value, expression, connection):
        return None if value is None else us_to_datetime(value)

    def to_python(self, value):
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, int):
            return us_to_datetime(value)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValidationError(f"{value!r} is not an ISO 8601 timestamp") from exc
            if parsed.tzinfo is None:
                raise ValidationError(f"timestamp {value!r} has no time zone")
            return parsed
        raise ValidationError(f"cannot read a timestamp from {type(value).__name__}")

    def get_prep_value(self, value):
        if value is None:
            return None
        if isinstance(value, datetime):
            return datetime_to_us(value)
        if isinstance(value, int):
            return value
        return datetime_to_us(self.to_python(value))

    def formfield(self, **kwargs):
        from django import forms

        return forms.DateTimeField(**kwargs)
