"""``python manage.py phm_kb load PATH... | clear | list | demo``: manage the assistant's knowledge base."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from phm.assistant import services
from phm.assistant.models import Document


class Command(BaseCommand):
    help = "Manage the maintenance assistant's knowledge base."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load", help="add or replace files (folders are searched recursively)")
        load.add_argument("paths", nargs="+", type=Path)
        load.add_argument("--equipment", default="", help="equipment tag the files are about")
        load.add_argument("--equipment-type", default="", help="equipment type the files are about (pump, chiller, ...)")
        load.add_argument("--doc-type", default="", help="document type (manual, procedure, work_orders, ...)")
        sub.add_parser("clear", help="delete every document")
        sub.add_parser("list", help="list the documents")
        demo = sub.add_parser("demo", help="load the demo plant's notes and the real chiller records when present")
        demo.add_argument("--no-assetopsbench", action="store_true")

    def handle(self, *args, action: str, **options) -> None:
        if action == "load":
            loaded, unchanged, errors = services.load_paths(
                options["paths"], equipment=options["equipment"], equipment_type=options["equipment_type"], doc_type=options["doc_type"]
            )
            for outcome in loaded:
                verb = "replaced" if outcome.replaced else "added"
                self.stdout.write(f"{verb} {outcome.document.name}: {outcome.document.chunk_count} passages")
            for line in unchanged:
                self.stdout.write(f"unchanged {line}")
            for error in errors:
                self.stderr.write(f"error: {error}")
            self.stdout.write(f"{len(loaded)} loaded, {len(unchanged)} unchanged, {len(errors)} failed")
            if errors:
                raise CommandError(f"{len(errors)} file(s) could not be loaded")
        elif action == "clear":
            self.stdout.write(f"deleted {services.clear_knowledge_base()} document(s)")
        elif action == "list":
            for document in Document.objects.all():
                self.stdout.write(f"{document.name}\t{document.doc_type}\t{document.equipment or document.equipment_type or '-'}\t{document.chunk_count} passages")
        elif action == "demo":
            result = services.load_demo_kb(include_assetopsbench=not options["no_assetopsbench"])
            self.stdout.write(f"loaded {len(result['loaded'])} document(s), {result['chunks']} passages; {result['unchanged']} unchanged")
            for error in result["errors"]:
                self.stderr.write(f"error: {error}")
