from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mpesa.fake_daraja import FakeDaraja


class Command(BaseCommand):
    help = "Run a local fake Daraja (OAuth, C2B register URL and simulate) for development."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument("--consumer-key", default="fake-key")
        parser.add_argument("--consumer-secret", default="fake-secret")
        parser.add_argument("--delay", type=float, default=0.5, help="seconds before calling back")

    def handle(self, *args: Any, **options: Any) -> None:
        fake = FakeDaraja(
            host=options["host"],
            port=options["port"],
            consumer_key=options["consumer_key"],
            consumer_secret=options["consumer_secret"],
            callback_delay=options["delay"],
        )
        self.stdout.write(
            f"Fake Daraja on {fake.url} (consumer key {options['consumer_key']!r}, secret "
            f"{options['consumer_secret']!r}). Point MPESA_API_BASE there. Ctrl-C stops it."
        )
        try:
            fake.serve_forever()
        except KeyboardInterrupt:
            fake.stop()
