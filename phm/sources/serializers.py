from __future__ import annotations

from rest_framework import serializers

from phm.sources.models import ConnectorDefinition, ConnectorStatus
from phm.sources.registry import ConfigError, validate_config
from phm.sources.secrets import SecretError, keep_secrets, masked


class ConnectorStatusSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConnectorStatus
        exclude = ["id", "connector"]


class ConnectorDefinitionSerializer(serializers.ModelSerializer):
    status = ConnectorStatusSerializer(read_only=True)

    class Meta:
        model = ConnectorDefinition
        fields = ["id", "name", "kind", "config", "enabled", "description", "created_at", "updated_at", "status"]
        read_only_fields = ["created_at", "updated_at", "status"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["config"] = masked(data.get("config"))  # secrets are write-only (phm.sources.secrets)
        return data

    def validate(self, attrs):
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        if "config" in attrs:
            try:
                attrs["config"] = keep_secrets(attrs["config"], getattr(self.instance, "config", None))
            except SecretError as exc:
                raise serializers.ValidationError({"config": str(exc)}) from None
        config = attrs.get("config", getattr(self.instance, "config", {}))
        try:
            validate_config(kind, config)
        except ConfigError as exc:
            raise serializers.ValidationError({"config": str(exc)}) from exc
        return attrs
