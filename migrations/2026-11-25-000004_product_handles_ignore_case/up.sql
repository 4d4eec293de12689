-- Product handles are hawkBit tenants, which match ignoring case: make them unique ignoring
-- case (issue 9). Handles that already clash in case keep the oldest product's; each newer
-- one gets '-' and the first 8 characters of its product id appended (rename it afterwards).
UPDATE products SET tid = substr(tid, 1, 55) || '-' || substr(id, 1, 8)
WHERE EXISTS (
    SELECT 1 FROM products older
    WHERE lower(older.tid) = lower(products.tid)
      AND (older.created_at < products.created_at
           OR (older.created_at = products.created_at AND older.id < products.id))
);
CREATE UNIQUE INDEX products_tid_lower ON products (lower(tid));
