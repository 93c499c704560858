"""Admin lists that stay fast at millions of rows (receipts, webhook log, journal entries, payments).

Counting every row of a list that matches (for "N results" and the page links) reads the whole match,
so it grows with history. Past a threshold the planner's estimate is shown instead: pages stay exact,
only the total is approximate (and, for a list that is not filtered, the unfiltered total too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min, Model, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

# Below this many rows (by the planner's estimate) a list is counted exactly.
EXACT_COUNT_UP_TO = 20_000
# A search matching up to this many rows is fetched by its indexes first, then listed by id.
SEARCH_FETCHED_UP_TO = 5_000


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
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


class ProbedDatesQuerySet(QuerySet[Any]):
    """The periods that have rows, for the admin's date drill-down, found by probing the date index once
    per candidate year, month or day between the first and last row, instead of reading every row for
    SELECT DISTINCT date_trunc(...). Same answer; cost grows with the periods shown, not the rows."""

    def dates(self, field_name: str, kind: str, order: str = "ASC") -> Any:
        return self._periods(field_name, kind, order, zone=None)

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None, **_: Any) -> Any:
        return self._periods(field_name, kind, order, zone=tzinfo or timezone.get_current_timezone())

    def _periods(self, field_name: str, kind: str, order: str, *, zone: tzinfo | None) -> list[Any]:
        if kind not in ("year", "month", "day"):
            raise ValueError(f"Unsupported period {kind!r}.")
        span = self.aggregate(first=Min(field_name), last=Max(field_name))
        if span["first"] is None:
            return []
        first, last = (_as_day(span[end], zone) for end in ("first", "last"))
        periods = []
        start = _period_start(first, kind)
        while start <= last:
            following = _period_after(start, kind)
            if zone is None:
                bounds = {f"{field_name}__gte": start, f"{field_name}__lt": following}
            else:
                bounds = {
                    f"{field_name}__gte": datetime.combine(start, time.min, tzinfo=zone),
                    f"{field_name}__lt": datetime.combine(following, time.min, tzinfo=zone),
                }
            # The first row in the period by the date index, not a bitmap of every row in it.
            if self.filter(**bounds).order_by(field_name).values_list(field_name, flat=True)[:1]:
                periods.append(start if zone is None else datetime.combine(start, time.min, tzinfo=zone))
            start = following
        return periods if order == "ASC" else periods[::-1]


def _as_day(value: date | datetime, zone: tzinfo | None) -> date:
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if zone else value.date()
    return value


def _period_start(day: date, kind: str) -> date:
    return day.replace(month=1, day=1) if kind == "year" else day.replace(day=1) if kind == "month" else day


def _period_after(start: date, kind: str) -> date:
    if kind == "year":
        return start.replace(year=start.year + 1)
    if kind == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


class LargeListAdminMixin:
    """For lists of a table that grows with every payment: estimated totals, no second count, and a
    date drill-down read from the index."""

    paginator: type[Paginator] = EstimatedCountPaginator  # type: ignore[type-arg]
    show_full_result_count: bool = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        queryset.__class__ = ProbedDatesQuerySet
        return queryset


class IndexedSearchMixin:
    """The admin's search (each word found in any search field, `contains`, any case), answered by
    indexes at any size. Django ORs every search field in one condition; when some are on related
    tables (customer__name) that OR spans a join, and PostgreSQL can only scan the whole list. Here the
    related rows that match are looked up first, in their own (smaller, indexed) tables, so every
    condition is on the listed table's own columns (trigram indexes) or foreign keys (b-tree indexes),
    which PostgreSQL ORs together from its indexes. Same results as Django's search."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        search_fields: Sequence[str] = getattr(self, "search_fields", ())
        if not (search_fields and search_term):
            return queryset, False
        matching = queryset
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            matching = matching.filter(_matching(queryset.model, list(search_fields), word))
        # Listed newest first, a rare match makes PostgreSQL walk the date index past every row in
        # the hope of finding a page of matches early; unordered, it ORs the search indexes. So a
        # search with few matches is fetched unordered first; one with many is left to the date index.
        ids = list(matching.order_by().values_list("pk", flat=True)[: SEARCH_FETCHED_UP_TO + 1])
        if len(ids) <= SEARCH_FETCHED_UP_TO:
            return queryset.filter(pk__in=ids), False
        return matching, False


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
        assert isinstance(target, type) and issubclass(target, Model)
        matches = target._default_manager.filter(_matching(target, rest_paths, word))
        if field.many_to_one or (field.one_to_one and not field.auto_created):
            ids = list(matches.values_list("pk", flat=True))
            condition |= Q(**{f"{field.attname}__in": ids})  # type: ignore[union-attr]
        else:  # a reverse foreign key: the rows those related rows point at
            ids = list(matches.values_list(field.field.attname, flat=True).distinct())  # type: ignore[union-attr]
            condition |= Q(pk__in=ids)
    return condition
