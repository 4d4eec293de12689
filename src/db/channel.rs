//! Channels: release tracks (stable, beta, …) of a product.

crate::db::product_scoped_table!(channels, Channel, ChannelChanges);
