"""Knowledge-base and question services of the maintenance assistant.

Writes follow one rule: everything slow or fallible (parsing, chunking, embedding) happens before
the transaction, and the transaction only swaps rows; so a failed upload leaves the knowledge
base exactly as it was, and a re-upload replaces a document's chunks atomically. Uploads from
the API and the page are checked in the request and embedded by a worker (DocumentJob).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from models import answering
from models.answering import Answer, Passage, QuestionError
from models.retrieval import assetopsbench
from models.retrieval.chunking import SUPPORTED_SUFFIXES, DocumentError, DocumentLimits, DocumentTooLarge, ParsedDocument, parse_document
from models.retrieval.embedding import embed_texts
from models.retrieval.index import ChunkFilter
from phm.assets.models import Equipment, EquipmentType
from phm.assistant import live, retrieval, vectorstore
from phm.assistant.models import Chunk, Conversation, Document, DocumentJob, DocumentType, KnowledgeBaseState, Message, MessageRole

logger = logging.getLogger(__name__)
DEFAULT_TOP_K = 5
MAX_NAME_CHARS = 255


class KnowledgeBaseError(ValueError):
    """An upload or deletion was refused; the message says which file and why."""


class DocumentTooBig(KnowledgeBaseError):
    """Over an upload, page, text or chunk limit (the API answers 413); the message names it."""


def document_limits() -> DocumentLimits:
    """The knowledge base's limits from settings (README "Security and limits")."""
    return DocumentLimits(
        max_bytes=settings.PHM_KB_MAX_UPLOAD_BYTES, max_pages=settings.PHM_KB_MAX_PAGES,
        max_text_chars=settings.PHM_KB_MAX_TEXT_CHARS, max_chunks=settings.PHM_KB_MAX_CHUNKS,
    )


_LIMIT_SETTINGS = {"byte limit": "PHM_KB_MAX_UPLOAD_BYTES", "page limit": "PHM_KB_MAX_PAGES", "character limit": "PHM_KB_MAX_TEXT_CHARS",
                   "chunk limit": "PHM_KB_MAX_CHUNKS"}


def _too_big(exc: DocumentTooLarge) -> DocumentTooBig:
    message = str(exc)
    setting = next((name for phrase, name in _LIMIT_SETTINGS.items() if phrase in message), None)
    return DocumentTooBig(f"{message} ({setting})" if setting else message)


class DuplicateDocument(KnowledgeBaseError):
    def __init__(self, message: str, existing: Document) -> None:
        super().__init__(message)
        self.existing = existing


class UnknownEquipment(ValueError):
    pass


@dataclass(frozen=True)
class IngestOutcome:
    document: Document
    replaced: bool  # True when an older version of the same file was replaced


# --- knowledge base ----------------------------------------------------------------------------------


def _bump_revision(using: str) -> None:
    token = uuid.uuid4().hex
    if not KnowledgeBaseState.objects.using(using).filter(pk=1).update(revision=token):
        KnowledgeBaseState.objects.using(using).create(pk=1, revision=token)


def _guess_doc_type(parsed: ParsedDocument) -> str:
    declared = parsed.metadata.get("doc_type", "").strip().lower()
    if declared in DocumentType.values:
        return declared
    name = parsed.name.lower()
    for needle, doc_type in (("wo", DocumentType.WORK_ORDERS), ("work_order", DocumentType.WORK_ORDERS), ("failure", DocumentType.FAILURE_CODES),
                             ("alert_rule", DocumentType.ALERT_RULES), ("procedure", DocumentType.PROCEDURE), ("manual", DocumentType.MANUAL)):
        if needle in PurePath(name).stem.split("_") or needle in name:
            return doc_type
    return DocumentType.REFERENCE if parsed.file_type == "csv" else DocumentType.OTHER


def _resolve_scope(equipment: str, equipment_type: str, *, using: str) -> tuple[str, str]:
    """A document about a known equipment inherits its type; an equipment type must be one of the plant's."""
    equipment, equipment_type = equipment.strip(), equipment_type.strip().lower()
    if equipment:
        known = live.resolve_equipment(equipment, using=using)
        if known is not None:
            return known.tag, known.equipment_type
    if equipment_type and equipment_type not in EquipmentType.values:
        raise KnowledgeBaseError(f"unknown equipment type {equipment_type!r}; one of: {', '.join(EquipmentType.values)}")
    return equipment, equipment_type


@dataclass(frozen=True)
class PreparedDocument:
    """A checked and chunked upload, ready to embed and store."""

    name: str
    content: bytes
    sha256: str
    existing: Document | None  # the document of the same name this upload replaces
    parsed: ParsedDocument
    doc_type: str
    rows: list[tuple[int, object, str, str]]  # (ordinal, chunk, equipment, equipment type)
    scope_equipment: str
    scope_type: str


def prepare_document(
    *, name: str, content: bytes, doc_type: str = "", equipment: str = "", equipment_type: str = "", using: str = "default"
) -> PreparedDocument:
    """Check and chunk an upload (no embedding, nothing written). Raises DuplicateDocument,
    DocumentTooBig (a limit of README "Security and limits") or KnowledgeBaseError with the reason."""
    name = PurePath(name or "").name.strip()
    if not name:
        raise KnowledgeBaseError("the file has no name")
    if len(name) > MAX_NAME_CHARS:
        raise KnowledgeBaseError(f"file name longer than {MAX_NAME_CHARS} characters")
    sha256 = hashlib.sha256(content).hexdigest()
    existing = Document.objects.using(using).filter(name=name).first()
    if existing is not None and existing.sha256 == sha256:
        raise DuplicateDocument(f"{name}: this exact file is already in the knowledge base (unchanged)", existing)
    same_content = Document.objects.using(using).filter(sha256=sha256).exclude(name=name).first()
    if same_content is not None:
        raise DuplicateDocument(f"{name}: identical to {same_content.name!r}, already in the knowledge base", same_content)
    try:
        parsed = parse_document(name, content, document_limits())
    except DocumentTooLarge as exc:
        raise _too_big(exc) from None
    except DocumentError as exc:
        raise KnowledgeBaseError(str(exc)) from None
    if doc_type and doc_type not in DocumentType.values:
        raise KnowledgeBaseError(f"unknown document type {doc_type!r}; one of: {', '.join(DocumentType.values)}")
    scope_equipment, scope_type = _resolve_scope(
        equipment or parsed.metadata.get("equipment", ""), equipment_type or parsed.metadata.get("equipment_type", ""), using=using
    )
    rows = [(ordinal, piece, piece.equipment or scope_equipment, piece.equipment_type or scope_type) for ordinal, piece in enumerate(parsed.chunks)]
    return PreparedDocument(name, content, sha256, existing, parsed, doc_type, rows, scope_equipment, scope_type)


#: Chunks embedded per step of a document job (each step updates the job's progress).
EMBED_BATCH = 64


def embed_prepared(prepared: PreparedDocument, *, progress=None):
    """Embeddings of the chunks, in steps of EMBED_BATCH; ``progress(done, total)`` after each."""
    import numpy as np

    texts = [retrieval.index_text(piece.text, eq) for _, piece, eq, _ in prepared.rows]
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        parts.append(embed_texts(texts[start : start + EMBED_BATCH]))
        if progress is not None:
            progress(min(start + EMBED_BATCH, len(texts)), len(texts))
    return np.concatenate(parts) if parts else embed_texts([])


def store_prepared(prepared: PreparedDocument, vectors, *, source: str = "upload", uploaded_by=None, using: str = "default") -> IngestOutcome:
    """Swap the document's rows in one transaction (a failure leaves the knowledge base as it was)."""
    batch = uuid.uuid4().hex
    rows, parsed = prepared.rows, prepared.parsed
    with transaction.atomic(using=using):
        # Looked up again: another upload of the same name may have been stored since prepare_document.
        existing = Document.objects.using(using).select_for_update().filter(name=prepared.name).first()
        replaced = existing is not None
        if existing is not None:
            existing.chunks.all().delete()
            document = existing
        else:
            document = Document(name=prepared.name)
        document.title = parsed.title[:300]
        document.file_type = parsed.file_type
        document.doc_type = prepared.doc_type or _guess_doc_type(parsed)
        document.equipment = prepared.scope_equipment
        document.equipment_type = prepared.scope_type
        document.source = source[:500]
        document.sha256 = prepared.sha256
        document.size_bytes = len(prepared.content)
        document.chunk_count = len(rows)
        document.uploaded_by = uploaded_by
        document.save(using=using)
        created = Chunk.objects.using(using).bulk_create(
            [
                Chunk(document=document, ordinal=ordinal, text=piece.text, location=piece.location[:300], page=piece.page, row=piece.row,
                      equipment=eq[:128], equipment_type=etype[:32], fields=piece.fields, embedding=vector.astype("<f4").tobytes(), batch=batch)
                for (ordinal, piece, eq, etype), vector in zip(rows, vectors)
            ],
            batch_size=500,
        )
        if vectorstore.pgvector_available(using):
            ids = list(Chunk.objects.using(using).filter(document=document).order_by("ordinal").values_list("id", flat=True))
            vectorstore.store_vectors(ids, vectors, using=using)
        _bump_revision(using)
    logger.info("%s %s: %d chunks", "replaced" if replaced else "added", prepared.name, len(created))
    return IngestOutcome(document=document, replaced=replaced)


def ingest_document(
    *,
    name: str,
    content: bytes,
    doc_type: str = "",
    equipment: str = "",
    equipment_type: str = "",
    source: str = "upload",
    uploaded_by=None,
    using: str = "default",
) -> IngestOutcome:
    """Add a document, or replace the document of the same name when its content changed, in
    this process (the command line and the demo loader; uploads go through :func:`queue_document`).

    Raises DuplicateDocument when the same content is already in the knowledge base (under this or
    another name) and KnowledgeBaseError (with the file name and reason) when the file is refused."""
    prepared = prepare_document(name=name, content=content, doc_type=doc_type, equipment=equipment, equipment_type=equipment_type, using=using)
    return store_prepared(prepared, embed_prepared(prepared), source=source, uploaded_by=uploaded_by, using=using)


# --- uploads: checked in the request, embedded by a worker --------------------------------------------


def queue_document(*, upload, doc_type: str = "", equipment: str = "", equipment_type: str = "", user=None) -> DocumentJob:
    """Check an upload now (size, type, duplicates, limits: errors reach the uploader at once),
    store it and queue the job that embeds it. The caller's transaction commits before the task
    is sent."""
    from phm.uploads import check_upload_size

    check_upload_size(kind="document", name=upload.name, size=upload.size)
    content = upload.read()
    prepared = prepare_document(name=upload.name, content=content, doc_type=doc_type, equipment=equipment, equipment_type=equipment_type)
    job = DocumentJob(name=prepared.name, doc_type=doc_type, equipment=equipment, equipment_type=equipment_type, created_by=user,
                      chunks_total=len(prepared.rows))
    job.file.save(prepared.name, ContentFile(content), save=False)
    job.save()
    from phm.assistant.tasks import ingest_document_job

    transaction.on_commit(lambda: ingest_document_job.delay(job.pk))
    return job


def run_document_job(*, job_id: int, using: str = "default") -> DocumentJob:
    """What the worker does: claim the job (a conditional update, so two workers never run it
    twice), parse again, embed with progress, store, and delete the uploaded file."""
    jobs = DocumentJob.objects.using(using)
    if not jobs.filter(pk=job_id, status=DocumentJob.Status.QUEUED).update(status=DocumentJob.Status.RUNNING, stage="parsing",
                                                                           started_at=timezone.now()):
        return jobs.get(pk=job_id)
    job = jobs.get(pk=job_id)
    try:
        with job.file.open("rb") as stored:
            content = stored.read()
        prepared = prepare_document(name=job.name, content=content, doc_type=job.doc_type, equipment=job.equipment,
                                    equipment_type=job.equipment_type, using=using)
        jobs.filter(pk=job_id).update(stage="embedding", chunks_total=len(prepared.rows))
        vectors = embed_prepared(prepared, progress=lambda done, total: jobs.filter(pk=job_id).update(chunks_done=done))
        jobs.filter(pk=job_id).update(stage="writing")
        outcome = store_prepared(prepared, vectors, uploaded_by=job.created_by, using=using)
    except Exception as exc:  # the job row is the record of what went wrong
        jobs.filter(pk=job_id).update(status=DocumentJob.Status.FAILED, error=str(exc)[:2000] or type(exc).__name__, finished_at=timezone.now())
        if not isinstance(exc, KnowledgeBaseError):
            raise
    else:
        jobs.filter(pk=job_id).update(status=DocumentJob.Status.SUCCEEDED, stage="done", document=outcome.document, replaced=outcome.replaced,
                                      chunks_done=len(prepared.rows), finished_at=timezone.now())
    finally:
        job.file.delete(save=False)
        jobs.filter(pk=job_id).update(file="")
    return jobs.get(pk=job_id)


@transaction.atomic
def delete_document(*, document: Document, using: str = "default") -> None:
    document.delete(using=using)
    _bump_revision(using)


def clear_knowledge_base(*, using: str = "default") -> int:
    """Delete every document (and so every chunk); returns how many documents there were."""
    with transaction.atomic(using=using):
        count = Document.objects.using(using).count()
        Document.objects.using(using).all().delete()
        _bump_revision(using)
    return count


def load_paths(paths: list[Path], *, using: str = "default", source_prefix: str = "", **scope) -> tuple[list[IngestOutcome], list[str], list[str]]:
    """Load files and folders (recursively, supported extensions only).
    Returns (loaded, unchanged names, error messages): one bad file does not stop the others."""
    files: list[Path] = []
    errors: list[str] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    loaded, unchanged = [], []
    for file in files:
        try:
            loaded.append(ingest_document(name=file.name, content=file.read_bytes(), source=f"{source_prefix}{file}", using=using, **scope))
        except DuplicateDocument as exc:
            unchanged.append(f"{file.name} ({exc})")
        except (KnowledgeBaseError, OSError) as exc:
            errors.append(str(exc))
    return loaded, unchanged, errors


# --- demo knowledge base -------------------------------------------------------------------------------

DEMO_KB_DIR = Path(__file__).resolve().parent / "demo_kb"
def load_demo_kb(*, include_assetopsbench: bool = True, using: str = "default") -> dict[str, object]:
    """Load the demo plant's maintenance notes and, when present, the real chiller records.
    Idempotent: files already loaded unchanged are skipped. Returns counts and any errors."""
    loaded, unchanged, errors = load_paths([DEMO_KB_DIR], using=using, source_prefix="demo:")
    files = assetopsbench.kb_files() if include_assetopsbench else []
    if files:
        more = load_paths(files, using=using, source_prefix="assetopsbench:", equipment_type="chiller")
        loaded, unchanged, errors = loaded + more[0], unchanged + more[1], errors + more[2]
    return {
        "loaded": [o.document.name for o in loaded],
        "unchanged": len(unchanged),
        "errors": errors,
        "chunks": sum(o.document.chunk_count for o in loaded),
    }


# --- questions -----------------------------------------------------------------------------------------


@dataclass
class AskContext:
    question: str
    passages: list[Passage]
    equipment: Equipment | None
    conversation: Conversation | None
    history: list[tuple[str, str]]


def prepare_question(
    *, question: object, equipment: str | None = None, user=None, conversation_id: int | None = None, k: int = DEFAULT_TOP_K, using: str = "default"
) -> AskContext:
    """Validate, find the equipment, retrieve passages and gather live data; no generation yet."""
    question = answering.validate_question(question)
    target = None
    if equipment:
        target = live.resolve_equipment(str(equipment), using=using)
        if target is None:
            raise UnknownEquipment(f"unknown equipment {equipment!r}: give a tag (P-101), a path (site/area/line/P-101) or a sensor tag")
    mentioned = target or live.mentioned_equipment(question, using=using)
    chunk_filter = ChunkFilter.of(equipment=[target.tag, target.name], equipment_types=[target.equipment_type]) if target else None
    passages: list[Passage] = []
    if mentioned is not None and (target is not None or live.has_live_intent(question)):
        for item in live.live_passages(mentioned, question=question, using=using):
            passages.append(Passage(len(passages) + 1, item.document, item.location, item.text, kind="live", dense=1.0))
    for found in retrieval.retrieve(question, k=k, chunk_filter=chunk_filter, using=using):
        chunk = found.chunk
        passages.append(Passage(len(passages) + 1, chunk.document.title or chunk.document.name, f"{chunk.document.name}, {chunk.location}",
                                chunk.text, score=found.hit.score, dense=found.hit.dense))
    conversation, history = None, []
    if user is not None and getattr(user, "is_authenticated", False):
        conversation = _conversation_for(user, conversation_id, question, using=using)
        history = _history(conversation, using=using)
    return AskContext(question, passages, mentioned, conversation, history)


def _conversation_for(user, conversation_id: int | None, question: str, *, using: str) -> Conversation:
    if conversation_id is not None:
        conversation = Conversation.objects.using(using).filter(pk=conversation_id, user=user).first()
        if conversation is None:
            raise QuestionError(f"conversation {conversation_id} not found for this user")
        return conversation
    return Conversation.objects.using(using).create(user=user, title=question[:200])


def _history(conversation: Conversation, *, using: str) -> list[tuple[str, str]]:
    messages = list(conversation.messages.using(using).order_by("-created_at", "-id")[:6])[::-1]
    pairs, pending = [], None
    for message in messages:
        if message.role == MessageRole.USER:
            pending = message.content
        elif pending is not None:
            pairs.append((pending, message.content))
            pending = None
    return pairs


def record_exchange(context: AskContext, answer: Answer, *, using: str = "default") -> Message | None:
    if context.conversation is None:
        return None
    with transaction.atomic(using=using):
        equipment = context.equipment.tag if context.equipment else ""
        Message.objects.using(using).create(conversation=context.conversation, role=MessageRole.USER, content=context.question, equipment=equipment)
        reply = Message.objects.using(using).create(
            conversation=context.conversation, role=MessageRole.ASSISTANT, content=answer.text, equipment=equipment, citations=answer.citations(),
            used_live_data=answer.used_live_data, refused=answer.refused, model_name=answer.model,
        )
        Conversation.objects.using(using).filter(pk=context.conversation.pk).update(updated_at=reply.created_at)
    return reply


@dataclass(frozen=True)
class AskResult:
    answer: Answer
    conversation_id: int | None


def ask(*, question: object, equipment: str | None = None, user=None, conversation_id: int | None = None, model=None, using: str = "default") -> AskResult:
    context = prepare_question(question=question, equipment=equipment, user=user, conversation_id=conversation_id, using=using)
    answer = answering.answer_from_passages(context.question, context.passages, model=model, history=context.history)
    record_exchange(context, answer, using=using)
    return AskResult(answer, context.conversation.pk if context.conversation else None)


def ask_stream(context: AskContext, *, model=None, using: str = "default") -> Iterator[dict[str, object]]:
    """Events for a streaming answer: ``sources`` (the passages, before generation starts), then
    ``token`` pieces, then ``done`` with the checked answer and its citations."""
    import time

    if not context.passages or not answering.is_relevant(context.question, context.passages):
        answer = answering.refusal(context.passages, question=context.question)
    else:
        yield {"event": "sources", "citations": [_passage_dict(p) for p in context.passages], "used_live_data": any(p.kind == "live" for p in context.passages)}
        model = model or answering.get_language_model()
        started, pieces = time.perf_counter(), []
        for piece in model.stream(answering.build_messages(context.question, context.passages, context.history)):
            pieces.append(piece)
            yield {"event": "token", "text": piece}
        # The streamed tokens are the model's draft; ``done`` carries the checked answer that replaces it.
        answer = answering.finish_answer("".join(pieces), context.passages, model=model.name, seconds=time.perf_counter() - started, question=context.question)
    record_exchange(context, answer, using=using)
    yield {"event": "done", **answer_payload(answer, context.conversation.pk if context.conversation else None)}


def _passage_dict(p: Passage) -> dict[str, object]:
    return {"number": p.number, "document": p.document, "location": p.location, "text": p.text, "kind": p.kind}


def answer_payload(answer: Answer, conversation_id: int | None) -> dict[str, object]:
    return {
        "answer": answer.text,
        "citations": answer.citations(),
        "used_live_data": answer.used_live_data,
        "refused": answer.refused,
        "invalid_citations": answer.invalid_citations,
        "model": answer.model,
        "conversation": conversation_id,
        # grounding: how the answer was made ("generated": checked model sentences; "extractive":
        # quoted passages because no sentence of the draft was supported; "refused"), the draft and
        # the check of each of its sentences.
        "mode": answer.mode,
        "draft": answer.draft,
        "sentences": answer.sentences,
    }
