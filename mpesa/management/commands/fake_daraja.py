from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mpesa.fake_daraja import FakeDaraja


class Command(BaseCommand):
    help = (
        "Run a local fake Daraja (OAuth, C2B, STK Push, Pull Transactions, Transaction Status) for "
        "development."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument("--consumer-key", default="fake-key")
        parser.add_argument("--consumer-secret", default="fake-secret")
        parser.add_argument("--delay", type=float, default=0.5, help="seconds before calling back")
        parser.add_argument(
            "--answer-delay", type=float, default=0.0, help="seconds each API answer takes (slow Safaricom)"
        )
        parser.add_argument(
            "--certificate",
            default="var/fake-daraja.cer",
            help="where to write its certificate, for MPESA_CERTIFICATE_PATH (the initiator APIs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeDaraja(
            host=options["host"],
            port=options["port"],
            consumer_key=options["consumer_key"],
            consumer_secret=options["consumer_secret"],
            callback_delay=options["delay"],
        )
        fake.state.answer_delay = options["answer_delay"]
        certificate = Path(options["certificate"])
        certificate.parent.mkdir(parents=True, exist_ok=True)
        certificate.write_bytes(fake.certificate_pem)
        self.stdout.write(
            f"Fake Daraja on {fake.url} (consumer key {options['consumer_key']!r}, secret "
            f"{options['consumer_secret']!r}). Point MPESA_API_BASE there. Ctrl-C stops it.\n"
            f"Initiator {fake.state.initiator_name!r}, password {fake.state.initiator_password!r}; "
            f"its certificate is in {certificate} (MPESA_CERTIFICATE_PATH)."
        )
        try:
            fake.serve_forever()
        except KeyboardInterrupt:
            fake.stop()
