from django.apps import AppConfig


class InvoicesConfig(AppConfig):
    name = "invoices"
    verbose_name = "Invoices and payments"

    def ready(self) -> None:
        from invoices.selectors import receivables_verify
        from ledger.selectors import ledger_check_register

        ledger_check_register(receivables_verify)
