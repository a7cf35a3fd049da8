"""Roster's URLs: GraphQL, the REST compatibility routes, and the Django admin."""

from django.contrib import admin
from django.urls import path

from backend import rest
from graph.schema import schema
from graph.views import RosterGraphQLView

urlpatterns = [
    path("graphql", RosterGraphQLView.as_view(schema=schema), name="graphql"),
    path("graphql/", RosterGraphQLView.as_view(schema=schema)),
    path("api/employees/", rest.insert_rows, name="rest-insert"),
    path("api/employees/<str:table>", rest.list_rows, name="rest-list"),
    path("admin/", admin.site.urls),
]
