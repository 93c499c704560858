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


class AuditEntry(models.Model):
    """Who did what, when and why, to money or to a customer's position. Written in the same
    transaction as the change, so it exists exactly when the change does."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for the system (Safaricom's callbacks, schedules).",
    )
    action = models.CharField(max_length=40, db_index=True)
    subject = models.CharField(max_length=80, db_index=True, help_text="e.g. invoice INV-20261127-0001")
    summary = models.TextField()
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.subject}"


class RefusalTally(models.Model):
    """How often this installation's processes turned work away to keep threads for Safaricom's
    callbacks (kellyos.slots), for /metrics. Each database backend counts in rows of its own, so no
    two refusals wait on one counter; the rows of backends that have gone are folded into backend
    0's."""

    backend_pid = models.IntegerField()
    reason = models.CharField(max_length=40)
    refusals = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["backend_pid", "reason"], name="kellyos_refusaltally_one_per_backend"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reason}: {self.refusals} (backend {self.backend_pid})"
