DROP INDEX products_tid_lower;
