"""Roster's Django project and its models app."""
