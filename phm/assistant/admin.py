from django.contrib import admin

from phm.assistant.models import Conversation, Document


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["name", "doc_type", "file_type", "equipment", "equipment_type", "chunk_count", "updated_at"]
    list_filter = ["doc_type", "file_type", "equipment_type"]
    search_fields = ["name", "title"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "title", "updated_at"]
