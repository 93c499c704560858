from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


class MpesaConfig(AppConfig):
    name = "mpesa"
    verbose_name = "M-Pesa"

    def ready(self) -> None:
        from ledger.selectors import ledger_check_register
        from mpesa.selectors import mpesa_verify

        register(webhook_token_check, Tags.security, deploy=True)
        register(production_shortcode_check, deploy=True)
        ledger_check_register(mpesa_verify)


def webhook_token_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    token = settings.MPESA_WEBHOOK_TOKEN
    if len(token) >= 24:
        return []
    return [
        Warning(
            "MPESA_WEBHOOK_TOKEN is unset or short: Safaricom's callbacks carry no signature, so the "
            "secret in the path is what keeps strangers out. With no token the webhooks answer 404.",
            hint="Set it to `python -c 'import secrets; print(secrets.token_hex(24))'` (hex never "
            "contains the words Safaricom refuses in URLs).",
            id="mpesa.W001",
        )
    ]


def production_shortcode_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.MPESA_ENV == "production" and settings.MPESA_SHORTCODE == "600000":
        return [
            Warning(
                "MPESA_ENV is production but MPESA_SHORTCODE is the sandbox default 600000: every real "
                "payment would be held in suspense as paid to another shortcode.",
                hint="Set MPESA_SHORTCODE to the business's PayBill number.",
                id="mpesa.W002",
            )
        ]
    return []
