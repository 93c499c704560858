from rest_framework import serializers

from invoices.models import InvoiceStatus


class InvoiceLineInputSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=255)
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0)
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0)


class InvoiceInputSerializer(serializers.Serializer):
    customer = serializers.CharField(help_text="The customer's code, e.g. CUST-0001")
    issue_date = serializers.DateField(required=False)
    due_date = serializers.DateField()
    lines = InvoiceLineInputSerializer(many=True, allow_empty=False)


class InvoiceLineOutputSerializer(serializers.Serializer):
    description = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3)
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=2)
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2)


class InvoiceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    customer = serializers.CharField(source="customer.code")
    customer_name = serializers.CharField(source="customer.name")
    issue_date = serializers.DateField()
    due_date = serializers.DateField()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    amount_paid = serializers.DecimalField(max_digits=14, decimal_places=2)
    balance_due = serializers.DecimalField(max_digits=14, decimal_places=2)
    status = serializers.ChoiceField(choices=InvoiceStatus.choices)
    lines = InvoiceLineOutputSerializer(many=True)


class StatementLineSerializer(serializers.Serializer):
    posted_at = serializers.DateTimeField()
    kind = serializers.CharField()
    description = serializers.CharField()
    debit = serializers.DecimalField(max_digits=14, decimal_places=2)
    credit = serializers.DecimalField(max_digits=14, decimal_places=2)
    balance = serializers.DecimalField(max_digits=14, decimal_places=2)


class StatementOutputSerializer(serializers.Serializer):
    customer = serializers.CharField(source="customer.code")
    customer_name = serializers.CharField(source="customer.name")
    start = serializers.DateField()
    end = serializers.DateField()
    opening_balance = serializers.DecimalField(max_digits=14, decimal_places=2)
    lines = StatementLineSerializer(many=True)
    closing_balance = serializers.DecimalField(max_digits=14, decimal_places=2)
