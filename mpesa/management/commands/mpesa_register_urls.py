from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mpesa.callback_urls import c2b_callback_urls
from mpesa.daraja import DarajaClient, DarajaError
from mpesa.exceptions import CallbackUrlError


class Command(BaseCommand):
    help = "Register our C2B validation and confirmation URLs with Safaricom (production: once only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", help="default: MPESA_CALLBACK_BASE_URL")
        parser.add_argument("--response-type", default=None, choices=["Completed", "Cancelled"])

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            urls = c2b_callback_urls(options["base_url"])
        except CallbackUrlError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Validation URL:   {urls['validation']}\nConfirmation URL: {urls['confirmation']}")
        try:
            answer = DarajaClient.from_settings().c2b_register_urls(
                shortcode=settings.MPESA_SHORTCODE,
                confirmation_url=urls["confirmation"],
                validation_url=urls["validation"],
                response_type=options["response_type"] or settings.MPESA_C2B_RESPONSE_TYPE,
                version=settings.MPESA_C2B_VERSION,
            )
        except DarajaError as exc:
            raise CommandError(f"Safaricom refused: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Safaricom answered: {answer}"))
