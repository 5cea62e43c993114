"""Serializers of the screening API: strict input (unknown fields and loose types refused) and output."""

from __future__ import annotations

import datetime
from typing import Any

from rest_framework import serializers

from payments.serializers import StrictCharField, StrictInputSerializer, StrictIntegerField

from .lists.entities import EntityType

MAX_NAME_LENGTH = 300
MAX_RESULTS = 50


class StrictDateField(serializers.DateField):
    """An ISO 8601 date as a JSON string (YYYY-MM-DD), not in the future."""

    default_error_messages = {"not_a_string": "Must be a date as a string, YYYY-MM-DD."}

    def to_internal_value(self, value: Any) -> datetime.date:
        if not isinstance(value, str):
            self.fail("not_a_string")
        result = super().to_internal_value(value)
        if result > datetime.date.today():  # noqa: DTZ011 - a calendar date, no time zone
            raise serializers.ValidationError("A date of birth cannot be in the future.")
        return result


class ScreeningSearchSerializer(StrictInputSerializer):
    name = StrictCharField(max_length=MAX_NAME_LENGTH, help_text="The name to screen (a person, company, vessel...).")
    date_of_birth = StrictDateField(
        required=False, input_formats=["iso-8601"], help_text="ISO date, YYYY-MM-DD; refines individuals' scores."
    )
    country = StrictCharField(
        required=False, min_length=2, max_length=2, help_text="ISO 3166-1 alpha-2 country code, e.g. GB."
    )
    type = serializers.ChoiceField(choices=[(kind.value, kind.value) for kind in EntityType], required=False)
    limit = StrictIntegerField(required=False, min_value=1, max_value=MAX_RESULTS, default=10)

    def validate_country(self, value: str) -> str:
        if not (value.isascii() and value.isalpha()):
            raise serializers.ValidationError("Use an ISO 3166-1 alpha-2 country code such as GB.")
        return value.upper()

    def validate_name(self, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value


class EntitySummarySerializer(serializers.Serializer):
    type = serializers.CharField()
    programs = serializers.ListField(child=serializers.CharField())
    dates_of_birth = serializers.ListField(
        child=serializers.CharField(), help_text="ISO partial dates: 1952, 1952-10, 1952-10-07."
    )
    nationalities = serializers.ListField(child=serializers.CharField())
    countries = serializers.ListField(child=serializers.CharField())


class ScreeningResultSerializer(serializers.Serializer):
    source = serializers.CharField(help_text='The list: "ofac_sdn", "un".')
    key = serializers.CharField(help_text="The list's own id of the entity.")
    primary_name = serializers.CharField()
    matched_name = serializers.CharField()
    matched_name_kind = serializers.CharField(help_text="primary, strong_alias, weak_alias or former_name.")
    score = serializers.FloatField(min_value=0, max_value=1)
    explanation = serializers.JSONField(help_text="How the score was reached: name alignment and factors.")
    entity = EntitySummarySerializer()


class ScreeningSearchResponseSerializer(serializers.Serializer):
    results = ScreeningResultSerializer(many=True)
