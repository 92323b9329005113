"""REST API of the assistant: ask (blocking and streamed), documents, conversations.
Views validate the request shape and call services; errors are ``{"error": "..."}``."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from models.answering import QuestionError
from phm.api.parsers import SafeJSONParser
from phm.assistant import services
from phm.assistant.models import Conversation, Document, DocumentJob
from phm.uploads import UploadTooLarge, check_upload_size


class AskSerializer(serializers.Serializer):
    question = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="The question, at most 2,000 characters.")
    equipment = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="Optional equipment tag, path or sensor tag.")
    conversation = serializers.IntegerField(required=False, allow_null=True, help_text="Continue this conversation of yours.")


ANSWER_RESPONSE = inline_serializer(
    "AssistantAnswer",
    {
        "answer": serializers.CharField(),
        "citations": serializers.ListField(child=serializers.DictField()),
        "used_live_data": serializers.BooleanField(),
        "refused": serializers.BooleanField(),
        "conversation": serializers.IntegerField(allow_null=True),
        "mode": serializers.ChoiceField(["generated", "extractive", "refused"], help_text="generated: the model's sentences that a passage supports, "
                                        "each cited by it; extractive: quoted passage sentences/rows, because no sentence of the model's draft was supported"),
        "draft": serializers.CharField(help_text="What the language model wrote, before the grounding check."),
        "sentences": serializers.ListField(child=serializers.DictField(), help_text="The check of each draft sentence: text, supported, passage, lexical, semantic, missing_facts."),
    },
)


def _prepare(request: Request) -> services.AskContext:
    body = request.data
    if not isinstance(body, dict):
        raise ParseError('expected a JSON object {"question": "..."}')
    serializer = AskSerializer(data=body)
    if not serializer.is_valid():
        raise ValidationError(serializer.errors)
    data = serializer.validated_data
    try:
        return services.prepare_question(
            question=data["question"], equipment=data.get("equipment") or None, user=request.user, conversation_id=data.get("conversation")
        )
    except (QuestionError, services.UnknownEquipment) as exc:
        raise ParseError(str(exc)) from None


class AskView(APIView):
    """``POST {"question": "...", "equipment": "<optional tag or path>"}`` -> an answer written from
    the knowledge base (and live data of the named equipment) with numbered citations."""

    parser_classes = [SafeJSONParser]

    @extend_schema(request=AskSerializer, responses=ANSWER_RESPONSE)
    def post(self, request: Request) -> Response:
        from models import answering

        context = _prepare(request)
        answer = answering.answer_from_passages(context.question, context.passages, history=context.history)
        services.record_exchange(context, answer)
        return Response(services.answer_payload(answer, context.conversation.pk if context.conversation else None))


class AskStreamView(APIView):
    """Same request as ``ask``; the response is a Server-Sent-Events stream: ``sources`` (passages),
    ``token`` pieces of the answer as they are generated, then ``done`` (the ``ask`` response)."""

    parser_classes = [SafeJSONParser]

    # Each SSE event is an object (event name + JSON data), not one string: that is what clients parse.
    @extend_schema(request=AskSerializer, responses={(200, "text/event-stream"): OpenApiTypes.OBJECT})
    def post(self, request: Request) -> StreamingHttpResponse:
        context = _prepare(request)

        def events():
            try:
                for event in services.ask_stream(context):
                    name = event.pop("event")
                    yield f"event: {name}\ndata: {json.dumps(event, default=str)}\n\n"
            except Exception as exc:  # the status line is already sent: report the failure in-band
                yield f"event: error\ndata: {json.dumps({'error': f'answer generation failed: {exc}'})}\n\n"

        response = StreamingHttpResponse(events(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass tokens through as they come
        return response


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "name", "title", "file_type", "doc_type", "equipment", "equipment_type", "source", "sha256", "size_bytes", "chunk_count", "created_at", "updated_at"]
        read_only_fields = fields


class DocumentJobSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)
    document = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = DocumentJob
        fields = ["id", "name", "status", "stage", "percent", "chunks_total", "chunks_done", "document", "replaced", "error", "created_at",
                  "started_at", "finished_at"]
        read_only_fields = fields


class DocumentJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Knowledge-base uploads being embedded by a worker: status, stage, chunks done of total."""

    queryset = DocumentJob.objects.all()
    serializer_class = DocumentJobSerializer


class DocumentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Knowledge-base documents. ``POST`` (multipart: ``file``, optional ``doc_type``, ``equipment``,
    ``equipment_type``) adds a file or replaces the one of the same name; ``DELETE`` removes it and its chunks."""

    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": inline_serializer("KnowledgeUpload", {"file": serializers.FileField(), "doc_type": serializers.CharField(required=False),
                                                                                "equipment": serializers.CharField(required=False), "equipment_type": serializers.CharField(required=False)})},
        responses={202: DocumentJobSerializer},
    )
    def create(self, request: Request) -> Response:
        """Check the file now (409 duplicate, 413 over a limit, 400 unreadable) and queue a job
        that embeds it; poll ``/assistant/document-jobs/<id>`` for progress and the document."""
        upload = request.FILES.get("file")
        if upload is None:
            raise ParseError("multipart field 'file' is missing")
        try:
            with transaction.atomic():
                job = services.queue_document(upload=upload, doc_type=request.data.get("doc_type", ""), equipment=request.data.get("equipment", ""),
                                              equipment_type=request.data.get("equipment_type", ""), user=request.user)
        except services.DuplicateDocument as exc:
            return Response({"error": str(exc), "document": exc.existing.pk}, status=status.HTTP_409_CONFLICT)
        except (UploadTooLarge, services.DocumentTooBig) as exc:
            return Response({"error": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except services.KnowledgeBaseError as exc:
            raise ParseError(str(exc)) from None
        return Response(DocumentJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance: Document) -> None:
        services.delete_document(document=instance)


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()
    equipment = serializers.CharField()
    citations = serializers.JSONField()
    used_live_data = serializers.BooleanField()
    refused = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ConversationSerializer(serializers.ModelSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at", "messages"]


class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The requesting user's conversations with the assistant (nobody sees another user's)."""

    serializer_class = ConversationSerializer

    def get_queryset(self):
        return Conversation.objects.filter(user=self.request.user).prefetch_related("messages")
