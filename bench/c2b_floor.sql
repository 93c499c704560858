-- The database floor for bench/c2b_load.py: one confirmation booked to an invoice with the same
-- writes, locks and checks as Kelly OS makes, in plain SQL (pgbench, prepared statements). The raw
-- log commits first on its own; the booking is one transaction, its statements merged as Kelly OS
-- merges them (the two locks in one; audit entry, outcome and events in one). :customers is set by
-- the bench.
\set cid random(1, :customers)
INSERT INTO mpesa_webhooklog (kind, received_at, source_ip, headers, body, status, detail, trans_id, attempts, lock_conflict_retries)
  VALUES ('c2b_confirmation', now(), '127.0.0.1', '{"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "340"}',
  '{"TransactionType": "Pay Bill", "TransID": "FLOOR", "TransTime": "20261127194000", "TransAmount": "100", "BusinessShortCode": "600000", "BillRefNumber": "CUST-0001", "InvoiceNumber": "", "OrgAccountBalance": "25.00", "ThirdPartyTransID": "", "MSISDN": "2547 ***** 126", "FirstName": "NICHOLAS", "MiddleName": "", "LastName": ""}',
  'RECEIVED', '', '', 0, 0) RETURNING id AS log_id \gset
BEGIN;
SELECT log.status, pg_advisory_xact_lock(2200, hashtext('FL' || :log_id))
  FROM (SELECT status FROM mpesa_webhooklog WHERE id = :log_id FOR UPDATE) AS log;
SELECT id FROM mpesa_mpesareceipt WHERE trans_id = 'FL' || :log_id;
SELECT id FROM customers_customer WHERE id = :cid FOR UPDATE;
SELECT COALESCE(SUM(amount), 0) FROM mpesa_mpesareceipt WHERE customer_id = :cid AND trans_time >= date_trunc('day', now()) AND trans_time < date_trunc('day', now()) + interval '1 day';
SELECT id AS invoice_id FROM invoices_invoice WHERE customer_id = :cid AND status IN ('UNPAID', 'PARTIALLY_PAID') ORDER BY id LIMIT 1 FOR UPDATE \gset
INSERT INTO ledger_journalentry (posted_at, memo, cause_kind, cause_id, reversal_reason, recorded_at)
  VALUES (now(), 'Payment FL' || :log_id || ' from a customer', 'receipt', 'FL' || :log_id, '', now()) RETURNING id AS entry_id \gset
INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, customer_id, posted_at)
  VALUES (:entry_id, 1, 100.00, 0, NULL, now()), (:entry_id, 2, 0, 100.00, :cid, now());
INSERT INTO invoices_payment (source, source_id, amount, reference, received_at, customer_id, invoice_id, allocated_amount, credit_amount, journal_entry_id, created_at, reallocation_reason, refund_reason)
  VALUES ('mpesa', 'FL' || :log_id, 100.00, 'CUST-0001', now(), :cid, :invoice_id, 100.00, 0, :entry_id, now(), '', '') RETURNING id AS payment_id \gset
INSERT INTO invoices_allocation (kind, payment_id, invoice_id, amount, journal_entry_id, created_at)
  VALUES ('PAYMENT', :payment_id, :invoice_id, 100.00, :entry_id, now());
UPDATE invoices_invoice SET amount_paid = amount_paid + 100.00, status = 'PARTIALLY_PAID' WHERE id = :invoice_id;
INSERT INTO mpesa_mpesareceipt (trans_id, trans_time, amount, business_short_code, bill_ref_number, invoice_number, transaction_type, org_account_balance, third_party_trans_id, msisdn, payer_name, source, status, unallocated_reason, unallocated_detail, customer_id, payment_id, unallocated_amount, recorded_at)
  VALUES ('FL' || :log_id, now(), 100.00, '600000', 'CUST-0001', '', 'Pay Bill', 25.00, '', '2547 ***** 126', 'NICHOLAS', 'C2B', 'ALLOCATED', '', '', :cid, :payment_id, 0, now()) RETURNING id AS receipt_id \gset
WITH audit AS (
  INSERT INTO kellyos_auditentry (at, action, subject, summary, reason, data)
  VALUES (now(), 'payment.receive', 'payment FL' || :log_id, 'KES 100.00 from a customer to an invoice.', '', '{}')),
outcome AS (
  UPDATE mpesa_webhooklog SET trans_id = 'FL' || :log_id, attempts = attempts + 1, status = 'PROCESSED', detail = 'Booked.', receipt_id = :receipt_id, processed_at = now() WHERE id = :log_id),
published AS (
  INSERT INTO kellyos_event (kind, payload, created_at) VALUES
    ('invoice', '{"number": "INV-20261127-0001", "status": "PARTIALLY_PAID", "balance_due": "4900.00"}', now()),
    ('customer', '{"code": "CUST-0001", "owed": "4900.00", "credit": "0.00", "balance": "4900.00"}', now()),
    ('payment', '{"trans_id": "FL", "amount": "100.00", "status": "Allocated to invoices"}', now())
  RETURNING id)
SELECT pg_notify('kellyos_events', max(id)::text) FROM published;
COMMIT;
