import logging


class RedactWebhookToken(logging.Filter):
    """Replaces the webhook secret (it travels in the callback path) with *** in every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.conf import settings

        token = getattr(settings, "MPESA_WEBHOOK_TOKEN", "")
        if token:
            message = record.getMessage()
            if token in message:
                record.msg, record.args = message.replace(token, "***"), None
        return True
