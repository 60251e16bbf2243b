-- Credit notes: every refund, whole or partial, is a numbered credit note of
-- the invoice it refunds. A row of invoice_refunds is one credit note:
--   credit_note      its name, cn-YYYY-MM-NNNN (the month it was made, NNNN the
--                    tenant's next number from credit_note_sequences, taken in
--                    the transaction that records the refund; never repeated)
--   credit_reason    why the operator gave the money back (printed on it)
--   lines            the lines it credits (a JSON document, see store::records);
--                    NULL for refunds made before credit notes, which were all
--                    refunds of the whole invoice: read as the invoice's lines
--   refund_reference the payment provider's id of the refund, once it answered
-- (`reason` stays the provider's reason for refusing, of FAILED ones.)
ALTER TABLE invoice_refunds ADD COLUMN credit_note TEXT NOT NULL DEFAULT '';
ALTER TABLE invoice_refunds ADD COLUMN credit_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE invoice_refunds ADD COLUMN lines TEXT;
ALTER TABLE invoice_refunds ADD COLUMN refund_reference TEXT;

-- Refunds made before credit notes become credit notes 1, 2, … of their
-- tenant, in the order they were made, named after the month each was made.
UPDATE invoice_refunds SET
    credit_note = (
        SELECT {{CREDIT_NOTE_NAME}}
        FROM (
            SELECT idempotency_key AS numbered_key, started_at,
                   ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY started_at, idempotency_key) AS seq
            FROM invoice_refunds
        ) AS numbered
        WHERE numbered.numbered_key = invoice_refunds.idempotency_key
    ),
    credit_reason = 'Refund of invoice ' || invoice || ' (made before credit notes had reasons)';

-- Each tenant's last credit note number.
CREATE TABLE credit_note_sequences (
    tenant_id TEXT   PRIMARY KEY REFERENCES tenants (id),
    last      BIGINT NOT NULL
);
INSERT INTO credit_note_sequences (tenant_id, last)
    SELECT tenant_id, COUNT(*) FROM invoice_refunds GROUP BY tenant_id;

CREATE UNIQUE INDEX invoice_refunds_credit_note ON invoice_refunds (tenant_id, credit_note);
