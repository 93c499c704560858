from rest_framework import serializers

from pos.models import SaleStatus


class SaleItemInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=100000)
    unit_price = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False, allow_null=True, default=None
    )


class SaleInputSerializer(serializers.Serializer):
    items = SaleItemInputSerializer(many=True, allow_empty=False)


class SaleLineOutputSerializer(serializers.Serializer):
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=2)
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2)


class SaleOutputSerializer(serializers.Serializer):
    posId = serializers.CharField(source="reference")
    status = serializers.ChoiceField(choices=SaleStatus.choices)
    total = serializers.DecimalField(max_digits=14, decimal_places=2)
    amount_paid = serializers.DecimalField(max_digits=14, decimal_places=2)
    balance_due = serializers.DecimalField(max_digits=14, decimal_places=2)
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)  # null until paid
    items = SaleLineOutputSerializer(source="lines", many=True)
