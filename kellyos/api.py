"""Shared API plumbing: decimal JSON, permissions per view and method, and the OpenAPI schema's
shared parts."""

import json
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class DecimalJSONParser(JSONParser):
    """JSON numbers become Decimal, never float, so 199.99 arrives as exactly 199.99."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return json.loads(stream.read().decode(encoding), parse_float=Decimal)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


class HasViewPermissions(BasePermission):
    """Each API view lists the Django permissions each HTTP method needs (`required_permissions`), so
    the API follows the same permissions as the admin."""

    message = "You do not have permission to do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        needed: dict[str, list[str]] = getattr(view, "required_permissions", {})
        method = request.method or ""
        method = "GET" if method == "HEAD" else method  # Django answers HEAD with the GET handler
        # A method the view does not list (OPTIONS, or one it does not implement) needs every
        # permission the view names: an endpoint says nothing about itself to someone with no right to it.
        perms = needed.get(method, sorted({perm for perms in needed.values() for perm in perms}))
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(perms))


def paginated(name: str, serializer: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of a page of `serializer` (PageNumberPagination), for views that paginate by hand."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_FIELD_ERRORS = {
    "type": "object",
    "description": "A message (or list of messages) per field; `detail` when the body could not be read.",
    "additionalProperties": True,
}


def _refusal(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def schema_add_refusals(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing: every operation behind authentication documents the 401 and
    403 it answers to strangers and to users without the permission, and every operation with input
    the 400 its validation answers, so the schema matches what the API really says. Every POST needs
    a body (the webhooks answer 411 without one)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorDetail", _DETAIL)
    components.setdefault("FieldErrors", _FIELD_ERRORS)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security", [{}]) != [{}]:  # [{}]: anyone may call it (the webhooks)
                responses.setdefault("401", _refusal("Not signed in.", "ErrorDetail"))
                responses.setdefault("403", _refusal("No permission for this.", "ErrorDetail"))
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", _refusal("Invalid input.", "FieldErrors"))
    return result
