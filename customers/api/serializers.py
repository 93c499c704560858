from typing import Any

from rest_framework import serializers


class CustomerInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)  # the service explains what is missing
    phone = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, default="")


class CustomerOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    owed = serializers.DecimalField(max_digits=14, decimal_places=2)
    credit = serializers.DecimalField(max_digits=14, decimal_places=2)
    balance = serializers.SerializerMethodField()

    def get_balance(self, customer: Any) -> str:
        return f"{customer.owed - customer.credit:.2f}"
