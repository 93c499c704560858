from django.db import models
from django.db.models import Q

CODE_PREFIX = "CUST-"


class Customer(models.Model):
    # Filled in by the database from a sequence when left blank (migration 0002), so every way of
    # creating a customer gets the next code and none is ever reused. It is also the account number
    # the customer types on the PayBill.
    code = models.CharField(max_length=20, unique=True, blank=True, editable=False)
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=12, blank=True, help_text="2547XXXXXXXX or 2541XXXXXXXX")
    # SHA-256 of the phone as M-Pesa v1 callbacks hash the payer's number, so a payment whose
    # account number is unknown can still suggest who paid.
    phone_sha256 = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=r"^254[17][0-9]{8}$"),
                name="customers_customer_phone_normalised",
            ),
            models.CheckConstraint(
                condition=Q(code__startswith=CODE_PREFIX), name="customers_customer_code_format"
            ),
        ]
        indexes = [models.Index(fields=["phone"], name="customers_customer_phone_idx")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"
