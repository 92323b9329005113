"""Structure-aware chunking of maintenance documents: PDF (text layer), Markdown, HTML, plain text
and CSV tables.

Each format keeps the structure a reader would cite: PDF chunks carry their page, Markdown/HTML
chunks their heading path, CSV chunks are one record per row with the columns kept as fields.
A Markdown or text file may start with a front-matter block (``---`` lines) of ``key: value``
pairs; ``equipment``, ``equipment_type``, ``doc_type`` and ``title`` become document metadata.

No Django here: ``phm.assistant`` stores what these functions return.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePath

#: Longest passage we keep in one chunk; MiniLM reads 256 word pieces (~1,000 characters), so
#: longer chunks would be truncated by the embedder and diluted for BM25.
MAX_CHUNK_CHARS = 1000
#: Biggest document we accept; a maintenance manual is a few MB, anything larger is a mistake.
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024

SUPPORTED_SUFFIXES = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "text", ".text": "text", ".csv": "csv"}
#: Columns whose value names the equipment a table row is about (first match wins).
EQUIPMENT_COLUMNS = ("equipment_tag", "tag", "equipment_name", "equipment_id", "asset", "equipment")
EQUIPMENT_TYPE_COLUMNS = ("equipment_type", "asset_type")
DATE_COLUMN_HINT = re.compile(r"date|time|finish|start|end", re.IGNORECASE)


class DocumentError(ValueError):
    """A document cannot be turned into chunks; the message says which file and why."""


class UnsupportedFileType(DocumentError):
    pass


class DocumentTooLarge(DocumentError):
    """A limit of :class:`DocumentLimits` was exceeded (the app answers 413)."""


@dataclass(frozen=True)
class DocumentLimits:
    """How much one document may expand to. A 23 KB PDF can hold megabytes of text (thousands of
    chunks to embed), so the upload size alone bounds nothing: pages are counted before any text
    is extracted, extraction stops at ``max_text_chars``, and the chunk count is checked before
    the caller embeds anything."""

    max_bytes: int = MAX_DOCUMENT_BYTES
    max_pages: int = 2000
    max_text_chars: int = 4_000_000
    max_chunks: int = 10_000  # AssetOpsBench's work-order table is 4,248 rows (one chunk each)


@dataclass(frozen=True)
class Chunk:
    """One citable passage of a document."""

    text: str
    location: str  # what a citation shows: "page 3", "row 17", "Bearing wear > Checks"
    heading: str = ""
    page: int | None = None
    row: int | None = None
    equipment: str = ""  # per-chunk equipment (CSV rows name their own); "" -> the document's
    equipment_type: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # CSV columns of the row


@dataclass(frozen=True)
class ParsedDocument:
    name: str
    file_type: str  # pdf | markdown | html | text | csv
    title: str
    chunks: list[Chunk]
    metadata: dict[str, str] = field(default_factory=dict)  # from front matter: equipment, equipment_type, doc_type, ...


def file_type_of(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedFileType(f"{name}: unsupported file type {suffix or '(no extension)'!r}; supported: {supported}")
    return SUPPORTED_SUFFIXES[suffix]


def parse_document(name: str, content: bytes, limits: DocumentLimits | None = None) -> ParsedDocument:
    """Chunk ``content`` according to the extension of ``name``. Raises DocumentError with the
    file name and the reason when the file is empty, undecodable, encrypted or has no text, and
    DocumentTooLarge when it is over one of ``limits``."""
    limits = limits or DocumentLimits()
    file_type = file_type_of(name)
    if not content:
        raise DocumentError(f"{name}: the file is empty")
    if len(content) > limits.max_bytes:
        raise DocumentTooLarge(f"{name}: {len(content):,} bytes is over the {limits.max_bytes:,} byte limit")
    if file_type == "pdf":
        title, chunks, metadata = PurePath(name).stem, _chunk_pdf(name, content, limits), {}
    else:
        text = _decode(name, content)
        if len(text) > limits.max_text_chars:
            raise DocumentTooLarge(f"{name}: {len(text):,} characters of text is over the {limits.max_text_chars:,} character limit")
        if file_type == "csv":
            title, chunks, metadata = PurePath(name).stem, _chunk_csv(name, text), {}
        else:
            metadata, body = _split_front_matter(text)
            if file_type == "html":
                body = html_to_markdown(body)
            chunks = _chunk_markdown(body) if file_type in {"markdown", "html"} else _chunk_plain(body)
            title = metadata.get("title") or _first_heading(body) or PurePath(name).stem
    chunks = [c for c in chunks if c.text.strip()]
    if not chunks:
        raise DocumentError(f"{name}: no text found in the file")
    if len(chunks) > limits.max_chunks:
        raise DocumentTooLarge(f"{name}: {len(chunks):,} chunks is over the {limits.max_chunks:,} chunk limit per document; split the document")
    return ParsedDocument(name=name, file_type=file_type, title=title, chunks=chunks, metadata=metadata)


def _decode(name: str, content: bytes) -> str:
    if b"\x00" in content[:4096]:
        raise DocumentError(f"{name}: looks like a binary file, not text")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError(f"{name}: not valid UTF-8 or Windows-1252 text")


# --- front matter and headings -------------------------------------------------------------------

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text
    metadata = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            metadata[key.strip().lower()] = value.strip().strip("\"'")
    return metadata, text[match.end():]


HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _first_heading(text: str) -> str:
    for line in text.splitlines():
        if match := HEADING.match(line):
            return match.group(2).strip()
    return ""


# --- Markdown / plain text ---------------------------------------------------------------------------


def _chunk_markdown(text: str) -> list[Chunk]:
    """One or more chunks per section; each chunk starts with its heading path so that a passage
    read alone (by BM25, the embedder or the operator) still says what it is about."""
    chunks: list[Chunk] = []
    path: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        heading = " > ".join(path)
        for block in _pack_blocks(_blocks("\n".join(lines)), MAX_CHUNK_CHARS - len(heading) - 2):
            chunks.append(Chunk(text=f"{heading}\n{block}" if heading else block, location=heading or "text", heading=heading))
        lines.clear()

    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path[:] = path[: level - 1] + [match.group(2).strip()]
        else:
            lines.append(line)
    flush()
    return chunks


def _chunk_plain(text: str) -> list[Chunk]:
    blocks = _pack_blocks(_blocks(text), MAX_CHUNK_CHARS)
    return [Chunk(text=block, location=f"part {i}") for i, block in enumerate(blocks, start=1)]


def _blocks(text: str) -> list[str]:
    """Paragraphs (blank-line separated); a Markdown table stays one block."""
    return [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]


def _pack_blocks(blocks: list[str], limit: int) -> list[str]:
    """Greedily join paragraphs up to ``limit`` characters; split a longer paragraph at line or
    sentence ends (table rows keep the header line so each piece stays readable)."""
    pieces: list[str] = []
    for block in blocks:
        pieces.extend(_split_long(block, limit) if len(block) > limit else [block])
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 2 + len(piece) <= limit:
            packed[-1] = f"{packed[-1]}\n\n{piece}"
        else:
            packed.append(piece)
    return packed


def _split_long(block: str, limit: int) -> list[str]:
    lines = block.splitlines()
    is_table = len(lines) > 2 and all(line.lstrip().startswith("|") for line in lines)
    header = "\n".join(lines[:2]) + "\n" if is_table else ""
    units = lines[2:] if is_table else (lines if len(lines) > 1 else re.split(r"(?<=[.!?])\s+", block))
    out: list[str] = []
    current = ""
    for unit in units:
        while len(unit) > limit:  # a single overlong line or sentence: hard wrap
            out.append(header + unit[:limit])
            unit = unit[limit:]
        candidate = f"{current}\n{unit}" if current else unit
        if len(header) + len(candidate) > limit and current:
            out.append(header + current)
            candidate = unit
        current = candidate
    if current:
        out.append(header + current)
    return out


# --- HTML --------------------------------------------------------------------------------------------


class _MarkdownWriter(HTMLParser):
    """HTML -> Markdown-like text: headings become '#' lines, paragraphs and list items lines,
    table rows pipe-separated lines; script/style/nav content is dropped."""

    SKIP = {"script", "style", "noscript", "nav", "head"}
    BLOCKS = {"p", "div", "li", "tr", "br", "section", "article", "table", "ul", "ol", "pre", "blockquote", "dd", "dt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_depth = 0
        self.cells: list[str] | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "tr":
            self.cells = []
        elif tag in {"td", "th"} and self.cells is not None:
            self.cells.append("")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in self.BLOCKS:
            self.out.append("\n\n" if tag == "p" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n")
        elif tag == "tr" and self.cells is not None:
            self.out.append("\n| " + " | ".join(c.strip() for c in self.cells) + " |")
            self.cells = None
        elif tag in {"p", "table", "ul", "ol"}:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        text = re.sub(r"\s+", " ", data)
        if self.cells is not None:
            if self.cells:
                self.cells[-1] += text
        else:
            self.out.append(text)


def html_to_markdown(html: str) -> str:
    writer = _MarkdownWriter()
    writer.feed(html)
    writer.close()
    text = "".join(writer.out)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- PDF ---------------------------------------------------------------------------------------------


def _chunk_pdf(name: str, content: bytes, limits: DocumentLimits) -> list[Chunk]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{name}: the PDF is encrypted (password protected); upload a decrypted copy")
        if len(reader.pages) > limits.max_pages:
            raise DocumentTooLarge(f"{name}: {len(reader.pages):,} pages is over the {limits.max_pages:,} page limit")
        pages, extracted = [], 0
        for page in reader.pages:  # page by page, so a text bomb stops at the limit, not at the end
            pages.append(page.extract_text() or "")
            extracted += len(pages[-1])
            if extracted > limits.max_text_chars:
                raise DocumentTooLarge(
                    f"{name}: the PDF's text passes {limits.max_text_chars:,} characters "
                    f"by page {len(pages)} of {len(reader.pages)}, over the {limits.max_text_chars:,} character limit"
                )
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"{name}: not a readable PDF ({exc})") from None
    except Exception as exc:  # pypdf raises assorted errors on damaged files; all mean the same to the user
        if "decrypt" in str(exc).lower() or "encrypt" in str(exc).lower():
            raise DocumentError(f"{name}: the PDF is encrypted (password protected); upload a decrypted copy") from None
        raise DocumentError(f"{name}: not a readable PDF ({exc})") from None
    if not any(text.strip() for text in pages):
        raise DocumentError(f"{name}: the PDF has no text layer ({len(pages)} page(s) of images?); run OCR first")
    chunks = []
    for number, text in enumerate(pages, start=1):
        blocks = _pack_blocks(_blocks(text), MAX_CHUNK_CHARS)
        for part, block in enumerate(blocks, start=1):
            location = f"page {number}" if len(blocks) == 1 else f"page {number} ({part}/{len(blocks)})"
            chunks.append(Chunk(text=block, location=location, page=number))
    return chunks


# --- CSV ---------------------------------------------------------------------------------------------


def _chunk_csv(name: str, text: str) -> list[Chunk]:
    """One chunk per row: ``column: value`` pairs (empty cells left out), the columns kept as
    fields. Date columns get the month spelled out ("April 2016") so that questions about a month
    match rows whose dates are written as 4/6/16."""
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DocumentError(f"{name}: the CSV file has no header row") from None
    if not any(header) or len(set(header)) != len(header):
        raise DocumentError(f"{name}: the CSV header must name every column once, got {header}")
    header = [h or f"column_{i + 1}" for i, h in enumerate(header)]
    lowered = [h.lower() for h in header]
    equipment_col = next((lowered.index(c) for c in EQUIPMENT_COLUMNS if c in lowered), None)
    type_col = next((lowered.index(c) for c in EQUIPMENT_TYPE_COLUMNS if c in lowered), None)
    table = PurePath(name).stem
    chunks = []
    try:
        for row_number, values in enumerate(reader, start=2):  # row 1 is the header, as a spreadsheet shows it
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(header) and any(v.strip() for v in values[len(header):]):  # trailing empty cells are harmless
                raise DocumentError(f"{name}: row {row_number} has {len(values)} cells but the header has {len(header)} columns")
            fields = {h: v.strip() for h, v in zip(header, values) if v.strip()}
            parts = [f"{column}: {_with_month(column, value)}" for column, value in fields.items()]
            chunks.append(
                Chunk(
                    text=f"{table} — " + "; ".join(parts),
                    location=f"row {row_number}",
                    row=row_number,
                    equipment=values[equipment_col].strip() if equipment_col is not None and equipment_col < len(values) else "",
                    equipment_type=values[type_col].strip().lower() if type_col is not None and type_col < len(values) else "",
                    fields=fields,
                )
            )
    except csv.Error as exc:
        raise DocumentError(f"{name}: malformed CSV near row {reader.line_num}: {exc}") from None
    return chunks


def _with_month(column: str, value: str) -> str:
    if not DATE_COLUMN_HINT.search(column) or not re.search(r"\d", value) or len(value) > 40:
        return value
    from dateutil import parser as date_parser

    try:
        parsed = date_parser.parse(value)
    except (ValueError, OverflowError):
        return value
    return f"{value} ({parsed:%B %Y})"
