from django import forms

from pos.models import Product

PRODUCT_ROWS = 5
FREE_ROWS = 2


class SaleForm(forms.Form):
    """Up to five catalogue products and two free-text items; empty rows are ignored."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        products = Product.objects.filter(is_active=True).order_by("name")
        for row in range(PRODUCT_ROWS):
            self.fields[f"product_{row}"] = forms.ModelChoiceField(products, required=False, label="Product")
            self.fields[f"product_qty_{row}"] = forms.IntegerField(
                min_value=1, max_value=100000, required=False
            )
        for row in range(FREE_ROWS):
            self.fields[f"item_{row}"] = forms.CharField(max_length=120, required=False, label="Other item")
            self.fields[f"item_price_{row}"] = forms.DecimalField(
                max_digits=14, decimal_places=2, min_value=0, required=False
            )
            self.fields[f"item_qty_{row}"] = forms.IntegerField(min_value=1, max_value=100000, required=False)

    def product_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"product_{row}"], self[f"product_qty_{row}"]) for row in range(PRODUCT_ROWS)]

    def free_rows(self) -> list[tuple[forms.BoundField, forms.BoundField, forms.BoundField]]:
        return [
            (self[f"item_{row}"], self[f"item_price_{row}"], self[f"item_qty_{row}"])
            for row in range(FREE_ROWS)
        ]
