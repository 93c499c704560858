"""The chart of accounts every Kelly OS business starts with (seeded by migration 0003)."""

CHART_OF_ACCOUNTS: list[tuple[str, str, str, str]] = [
    ("1010", "M-Pesa Cash", "ASSET", "Money received into the PayBill or till."),
    ("1200", "Accounts Receivable", "ASSET", "What customers owe on open invoices."),
    (
        "2100",
        "Customer Credit",
        "LIABILITY",
        "Overpayments and prepayments owed back to customers as future invoices.",
    ),
    (
        "2200",
        "Unallocated M-Pesa Receipts",
        "LIABILITY",
        "Suspense: money received that has not yet been matched to a customer, invoice or sale.",
    ),
    ("4000", "Sales Revenue", "REVENUE", "Income from invoices and point-of-sale sales."),
    ("5000", "Cost of Goods Sold", "EXPENSE", "What the goods sold cost the business."),
]

MPESA_CASH = "1010"
ACCOUNTS_RECEIVABLE = "1200"
CUSTOMER_CREDIT = "2100"
UNALLOCATED_RECEIPTS = "2200"
SALES_REVENUE = "4000"
COST_OF_GOODS_SOLD = "5000"
