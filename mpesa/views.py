"""M-Pesa Express on the cashier's waiting screen: send the prompt, ask how it went. (The POS knows
nothing of Safaricom; these pages sit on the POS's URLs but live here.)"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_http_methods

from mpesa.models import StkPush
from mpesa.services.stk import StkError, stk_check_now, stk_push_for_sale, stk_words
from pos.models import Sale
from pos.selectors import sale_get_by_reference


def _sale_for(request: HttpRequest, reference: str) -> Sale:
    sale = sale_get_by_reference(reference)
    user = request.user
    assert isinstance(user, User)
    if sale is None or (
        sale.cashier_id != user.pk and not (user.is_staff and user.has_perm("pos.view_sale"))
    ):
        raise Http404("No such sale.")
    return sale


def _prompt_json(push: StkPush | None) -> dict[str, object]:
    if push is None:
        return {"prompt": None}
    return {
        "prompt": {
            "status": push.status,
            "words": stk_words(push),
            "phone": push.phone,
            "amount": str(push.amount),
        }
    }


@login_required
@permission_required("pos.add_sale", raise_exception=True)
@require_http_methods(["GET", "POST"])
def sale_prompt(request: HttpRequest, reference: str) -> JsonResponse:
    """GET: the latest prompt's state. POST phone=07...: send a new prompt for the sale's balance.
    POST check=1: ask Safaricom now about an unanswered prompt."""
    sale = _sale_for(request, reference)
    if request.method == "POST":
        assert isinstance(request.user, User)
        try:
            if request.POST.get("check"):
                stk_check_now(sale=sale)
            else:
                stk_push_for_sale(sale=sale, phone=request.POST.get("phone", ""), by=request.user)
        except StkError as exc:
            return JsonResponse({"error": str(exc), **_prompt_json(sale.stk_pushes.first())}, status=400)
    return JsonResponse(_prompt_json(sale.stk_pushes.order_by("-created_at", "-id").first()))
