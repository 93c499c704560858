from django.db import models


class Event(models.Model):
    """Something committed that screens should show at once (a payment booked, an invoice paid).

    Written in the same transaction as the change and announced with PostgreSQL NOTIFY, which is
    delivered only when that transaction commits; kept so a reconnecting browser can catch up."""

    kind = models.CharField(max_length=40)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"
