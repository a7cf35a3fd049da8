"""The Django admin: browse the data, the batches and the rejection log; manage tokens."""

from django.contrib import admin

from backend import models


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
    list_display = ("id", "source", "table", "position", "row_id", "created_at")
    list_filter = ("source", "table")


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "scope", "created_at", "last_used_at")
    readonly_fields = ("key_hash",)
