"""The Django admin: browse the data, the batches and the rejection log; manage tokens."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control
from django.utils.html import format_html

from backend import auth, models


@admin.register(models.Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("id", "department")
    search_fields = ("department",)


@admin.register(models.Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "job")
    search_fields = ("job",)


@admin.register(models.HiredEmployee)
class HiredEmployeeAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "datetime", "department", "job")
    list_select_related = ("department", "job")
    list_filter = ("department",)
    search_fields = ("name",)


@admin.register(models.Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "source",
        "table",
        "received",
        "inserted",
        "rejected",
        "status",
        "started_at",
    )
    list_filter = ("source", "table", "status")


@admin.register(models.Rejection)
class RejectionAdmin(admin.ModelAdmin):
    list_display = (
        "id", "source", "table", "position", "row_id", "status", "attempts", "parked", "created_at",
    )  # fmt: skip
    list_filter = ("status", "parked", "source", "table")


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Add a token as ``create_token`` does: pick a name and a scope; Roster generates the
    token, stores its SHA-256 and shows the token once, on the page that answers the form
    (never stored, not even in a message cookie). The hash is never shown or edited.

    A token keeps its scope: to change it, add a new token and delete the old one. Nobody can
    grant a scope wider than their own session's (``backend.auth.session_scope``).
    """

    list_display = ("name", "scope", "created_at", "last_used_at")
    search_fields = ("name",)

    def get_fields(self, request: HttpRequest, obj: models.ApiToken | None = None) -> tuple:
        return ("name", "scope") if obj is None else ("name", "scope", "created_at", "last_used_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: models.ApiToken | None = None
    ) -> tuple:
        return () if obj is None else ("scope", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and bool(auth.grantable_scopes(request.user))

    def formfield_for_choice_field(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "scope":
            kwargs["choices"] = [
                (scope.value, scope.label) for scope in auth.grantable_scopes(request.user)
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        # One way out of the add form: the page that shows the token.
        extra_context = {
            **(extra_context or {}),
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: models.ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token = auth.new_token()
        obj.key_hash = auth.hash_token(token)
        super().save_model(request, obj, form, change)
        messages.success(
            request,
            format_html(
                'The {} token “{}” was created: <code id="new-api-token">{}</code> Copy it now. '
                "Only its SHA-256 is kept, so it cannot be shown again.",
                obj.scope,
                obj.name,
                token,
            ),
        )

    def response_add(
        self, request: HttpRequest, obj: models.ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """A page of its own rather than a redirect, so the message with the token is shown
        in this response and never kept for the next one."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API token “{obj.name}” created",
            "token": obj,
        }
        response = TemplateResponse(request, "admin/backend/apitoken/created.html", context)
        patch_cache_control(response, no_store=True)
        return response
