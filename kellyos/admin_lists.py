"""Admin lists that stay fast at millions of rows (receipts, webhook log, journal entries, payments).

Counting every row of a list that matches (for "N results" and the page links) reads the whole match,
so it grows with history. Past a threshold the planner's estimate is shown instead: pages stay exact,
only the total is approximate (and, for a list that is not filtered, the unfiltered total too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

# Below this many rows (by the planner's estimate) a list is counted exactly.
EXACT_COUNT_UP_TO = 20_000


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        estimate = _planner_rows(queryset)
        if estimate is None or estimate <= EXACT_COUNT_UP_TO:
            return super().count
        return estimate


def _planner_rows(queryset: Any) -> int | None:
    if not hasattr(queryset, "query"):
        return None
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class LargeListAdminMixin:
    """For lists of a table that grows with every payment: estimated totals, no second count."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False


class IndexedSearchMixin:
    """The admin's search (each word found in any search field, `contains`, any case), answered by
    indexes at any size. Django ORs every search field in one condition; when some are on related
    tables (customer__name) that OR spans a join, and PostgreSQL can only scan the whole list. Here the
    related rows that match are looked up first, in their own (smaller, indexed) tables, so every
    condition is on the listed table's own columns (trigram indexes) or foreign keys (b-tree indexes),
    which PostgreSQL ORs together from its indexes. Same results as Django's search."""

    search_fields: Sequence[str]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not (self.search_fields and search_term):
            return queryset, False
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            queryset = queryset.filter(_matching(queryset.model, list(self.search_fields), word))
        return queryset, False


def _matching(model: type[Model], paths: list[str], word: str) -> Q:
    """Rows of `model` where any of `paths` contains `word`; related paths resolved to ids first."""
    condition = Q()
    related: dict[str, list[str]] = {}
    for path in paths:
        first, _, rest = path.partition(LOOKUP_SEP)
        if rest:
            related.setdefault(first, []).append(rest)
        else:
            condition |= Q(**{f"{first}__icontains": word})
    for name, rest_paths in related.items():
        field = model._meta.get_field(name)
        target = field.related_model
        assert target is not None
        matches = target._default_manager.filter(_matching(target, rest_paths, word))
        if field.many_to_one or (field.one_to_one and not field.auto_created):
            ids = list(matches.values_list("pk", flat=True))
            condition |= Q(**{f"{field.attname}__in": ids})  # type: ignore[union-attr]
        else:  # a reverse foreign key: the rows those related rows point at
            ids = list(matches.values_list(field.field.attname, flat=True).distinct())  # type: ignore[union-attr]
            condition |= Q(pk__in=ids)
    return condition
