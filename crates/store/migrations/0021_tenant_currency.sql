-- The ISO 4217 currency a tenant is priced and invoiced in (one of its
-- catalog's currencies), set when it is created and changed by the operator
-- only while none of its invoices is unpaid. NULL: a tenant created before
-- currencies, in its catalog's first currency; the application pins it to
-- that code when it opens the database.
ALTER TABLE tenants ADD COLUMN currency TEXT;
