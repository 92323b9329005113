"""Knowledge base (documents, chunks and their embeddings) and conversations.

Embeddings are stored with each chunk as float32 bytes, so the in-process index of any worker
can be rebuilt from the database without re-embedding; on PostgreSQL with the pgvector extension
they are also mirrored into a ``vector`` column (see :mod:`phm.assistant.vectorstore`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DocumentType(models.TextChoices):
    MANUAL = "manual", "Manual"
    PROCEDURE = "procedure", "Procedure"
    MAINTENANCE_NOTE = "maintenance_note", "Maintenance note"
    WORK_ORDERS = "work_orders", "Work orders"
    FAILURE_CODES = "failure_codes", "Failure codes"
    ALERT_RULES = "alert_rules", "Alert rules"
    REFERENCE = "reference", "Reference table"
    OTHER = "other", "Other"


class Document(models.Model):
    name = models.CharField(max_length=255, unique=True, help_text="File name; uploading the same name again replaces the document.")
    title = models.CharField(max_length=300, blank=True)
    file_type = models.CharField(max_length=16, help_text="pdf | markdown | html | text | csv")
    doc_type = models.CharField(max_length=32, choices=DocumentType.choices, default=DocumentType.OTHER)
    equipment = models.CharField(max_length=128, blank=True, help_text="Equipment tag the whole document is about, if any.")
    equipment_type = models.CharField(max_length=32, blank=True, help_text="Equipment type the document is about, if any.")
    source = models.CharField(max_length=500, blank=True, help_text="Where it was loaded from (path or 'upload').")
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField()
    chunk_count = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField(help_text="Position in the document.")
    text = models.TextField()
    location = models.CharField(max_length=300, help_text="What a citation shows: 'page 3', 'row 17', a heading path.")
    page = models.PositiveIntegerField(null=True, blank=True)
    row = models.PositiveIntegerField(null=True, blank=True)
    equipment = models.CharField(max_length=128, blank=True, db_index=True)
    equipment_type = models.CharField(max_length=32, blank=True, db_index=True)
    fields = models.JSONField(default=dict, blank=True, help_text="CSV columns of a table row.")
    embedding = models.BinaryField(help_text="float32 little-endian, L2-normalised")
    # Random per upload: SQLite reuses the ids of deleted rows, so (id, batch) -- not the id alone --
    # tells an in-process index whether it holds this very chunk.
    batch = models.CharField(max_length=32)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_ordinal_unique_per_document")]

    def __str__(self) -> str:
        return f"{self.document.name} {self.location}"


class KnowledgeBaseState(models.Model):
    """One row whose ``revision`` (a random token) changes with every change of the knowledge base:
    each process compares it with the revision its in-process index was built at and catches up
    incrementally. A random token rather than a counter, so that a rolled-back transaction can
    never make an old revision number look current again."""

    revision = models.CharField(max_length=32, default="")


class Conversation(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assistant_conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title or f"conversation {self.pk}"


class MessageRole(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField()
    equipment = models.CharField(max_length=128, blank=True)
    citations = models.JSONField(default=list, blank=True)
    used_live_data = models.BooleanField(default=False)
    refused = models.BooleanField(default=False)
    model_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class DocumentJob(models.Model):
    """A knowledge-base upload being parsed and embedded by a worker (never in the web request:
    a large manual is thousands of chunks). The request checks the file and stores it; the job
    row shows progress (stage, chunks embedded) and, at the end, the document or the error."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    file = models.FileField(upload_to="kb_uploads/%Y/%m/", help_text="The upload until the job has run (deleted afterwards).")
    name = models.CharField(max_length=255)
    doc_type = models.CharField(max_length=32, blank=True)
    equipment = models.CharField(max_length=128, blank=True)
    equipment_type = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=16, default="queued", help_text="queued | parsing | embedding | writing | done")
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    document = models.ForeignKey(Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    replaced = models.BooleanField(default=False, help_text="The upload replaced a document of the same name.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    @property
    def percent(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 100.0
        return round(100.0 * self.chunks_done / self.chunks_total, 1) if self.chunks_total else 0.0

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
