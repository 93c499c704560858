import re
from datetime import datetime, time, timedelta

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from pos.models import REFERENCE_PREFIX, Sale

# What a customer may type for POS-000042: "pos-000042", "POS 42", "pos42".
_REFERENCE_TEXT = re.compile(r"^POS-?0*([0-9]{1,9})$", re.ASCII)


def sale_reference_normalize(reference: str) -> str | None:
    match = _REFERENCE_TEXT.match("".join(reference.split()).upper())
    if not match:
        return None
    number = int(match.group(1))
    return f"{REFERENCE_PREFIX}{number:06d}"


def sale_get_by_reference(reference: str) -> Sale | None:
    normalised = sale_reference_normalize(reference)
    return Sale.objects.filter(reference=normalised).first() if normalised else None


def sale_list_today(*, cashier: User) -> QuerySet[Sale]:
    start = datetime.combine(timezone.localdate(), time.min, tzinfo=timezone.get_current_timezone())
    return Sale.objects.filter(
        cashier=cashier, created_at__gte=start, created_at__lt=start + timedelta(days=1)
    )
