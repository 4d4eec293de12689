//! Models: hardware variants of a product; firmware is built per model.

crate::db::product_scoped_table!(models, Model, ModelChanges);
