"""Roster's URLs: GraphQL, the REST compatibility routes, health probes, and the Django admin."""

from django.contrib import admin
from django.urls import path

from backend import dashboard, health, rest
from graph.schema import schema
from graph.views import RosterGraphQLView

urlpatterns = [
    path("graphql", RosterGraphQLView.as_view(schema=schema), name="graphql"),
    path("graphql/", RosterGraphQLView.as_view(schema=schema)),
    path("api/employees/", rest.insert_rows, name="rest-insert"),
    path("api/employees/<str:table>", rest.list_rows, name="rest-list"),
    path("api/metrics/hires-by-quarter", rest.hires_by_quarter, name="hires-by-quarter"),
    path(
        "api/metrics/departments-above-mean",
        rest.departments_above_mean,
        name="departments-above-mean",
    ),
    path("dashboard/", dashboard.view, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

handler500 = "backend.health.server_error"
