import json
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mpesa.callback_urls import c2b_callback_urls
from mpesa.daraja import DarajaClient, DarajaError
from mpesa.exceptions import CallbackUrlError
from mpesa.fake_daraja import c2b_payment_payload


class Command(BaseCommand):
    help = (
        "Simulate a customer paying the PayBill: through the sandbox or the fake Daraja, or with --direct "
        "by posting a well-formed confirmation straight to our own endpoint (no Safaricom needed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--amount", required=True, help="whole shillings, e.g. 1000")
        parser.add_argument(
            "--account", required=True, help="the account number typed: an invoice number or CUST-…"
        )
        parser.add_argument(
            "--msisdn", default="254708374149", help="payer's phone (Safaricom's sandbox test number)"
        )
        parser.add_argument("--direct", action="store_true", help="post the confirmation to our own endpoint")
        parser.add_argument("--base-url", help="our server, for --direct (default: MPESA_CALLBACK_BASE_URL)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            amount = Decimal(options["amount"])
        except InvalidOperation as exc:
            raise CommandError(f"--amount {options['amount']!r} is not a number.") from exc
        if amount != amount.to_integral_value() or amount < 1:
            raise CommandError("M-Pesa takes whole shillings of at least 1.")
        if settings.MPESA_ENV == "production":
            raise CommandError(
                "No simulated payments in production: Safaricom does not simulate there, and a --direct one "
                "would book money that never arrived."
            )
        if options["direct"]:
            self._direct(int(amount), options)
            return
        try:
            answer = DarajaClient.from_settings().c2b_simulate(
                shortcode=settings.MPESA_SHORTCODE,
                amount=amount,
                msisdn=options["msisdn"],
                bill_ref_number=options["account"],
                version=settings.MPESA_C2B_VERSION,
            )
        except DarajaError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Daraja accepted the simulation: {answer}"))

    def _direct(self, amount: int, options: dict[str, Any]) -> None:
        try:
            url = c2b_callback_urls(options["base_url"])["confirmation"]
        except CallbackUrlError as exc:
            raise CommandError(str(exc)) from exc
        payload = c2b_payment_payload(
            shortcode=settings.MPESA_SHORTCODE,
            amount=amount,
            account=options["account"],
            msisdn=options["msisdn"],
            version=settings.MPESA_C2B_VERSION,
        )
        try:
            response = requests.post(url, json=payload, timeout=settings.MPESA_HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise CommandError(f"Could not reach {url}: {exc}") from exc
        self.stdout.write(f"Posted {payload['TransID']} for KES {amount} to {url}")
        self.stdout.write(
            f"Answer {response.status_code}: {json.dumps(response.json()) if response.content else ''}"
        )
        if response.status_code != 200:
            raise CommandError("The confirmation was not accepted.")
