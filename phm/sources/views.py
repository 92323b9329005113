"""API for connector definitions (CRUD) and their live status (read)."""

from __future__ import annotations

from rest_framework import viewsets

from phm.sources.models import ConnectorDefinition
from phm.sources.serializers import ConnectorDefinitionSerializer


class ConnectorDefinitionViewSet(viewsets.ModelViewSet):
    """Connector definitions; each carries the status its supervisor last stored
    (state, connected, last message time, counts, last error). Changes take effect when
    ``manage.py phm_connectors`` restarts (or reloads, see its ``--reload-seconds``)."""

    queryset = ConnectorDefinition.objects.select_related("status")
    serializer_class = ConnectorDefinitionSerializer
    lookup_field = "name"

    def get_queryset(self):
        queryset = super().get_queryset()
        kind = self.request.query_params.get("kind")
        return queryset.filter(kind=kind) if kind else queryset
