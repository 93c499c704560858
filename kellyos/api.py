"""Shared API plumbing: decimal JSON, and permissions per view and method."""

import json
from decimal import Decimal
from typing import Any

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
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(needed.get(request.method or "", [])))
