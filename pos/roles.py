"""The Cashier role: ring up, view and cancel sales, see the catalogue; nothing else."""

CASHIER_GROUP = "Cashier"
CASHIER_PERMISSIONS = ["add_sale", "view_sale", "cancel_sale", "view_product"]
