//! One schema for both backends (SQLite and PostgreSQL). Only types both share:
//! ids are UUID text, JSON is text, times are UTC `Timestamp`s.

diesel::table! {
    products (id) {
        id -> Text,
        tid -> Text,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    models (id) {
        id -> Text,
        tid -> Text,
        name -> Text,
        product_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    channels (id) {
        id -> Text,
        tid -> Text,
        name -> Text,
        product_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    delivery_methods (id) {
        id -> Text,
        tid -> Text,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    delivery_procedures (id) {
        id -> Text,
        tid -> Text,
        name -> Text,
        delivery_method_id -> Text,
        steps -> Text,
        confirm -> Bool,
        timeouts -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    firmware (id) {
        id -> Text,
        model_id -> Text,
        version -> Text,
        state -> Text,
        filename -> Nullable<Text>,
        size -> Nullable<BigInt>,
        sha256 -> Nullable<Text>,
        sha1 -> Nullable<Text>,
        md5 -> Nullable<Text>,
        object_key -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        released_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    firmware_channels (firmware_id, channel_id) {
        firmware_id -> Text,
        channel_id -> Text,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        product_id -> Text,
        device_id -> Text,
        name -> Nullable<Text>,
        model_id -> Nullable<Text>,
        channel_id -> Nullable<Text>,
        installed_firmware_id -> Nullable<Text>,
        installed_version -> Nullable<Text>,
        attributes -> Text,
        last_seen -> Nullable<Timestamp>,
        last_session_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        hint -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        user_id -> Text,
        product_id -> Nullable<Text>,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(models -> products (product_id));
diesel::joinable!(channels -> products (product_id));
diesel::joinable!(delivery_procedures -> delivery_methods (delivery_method_id));
diesel::joinable!(firmware -> models (model_id));
diesel::joinable!(firmware_channels -> firmware (firmware_id));
diesel::joinable!(firmware_channels -> channels (channel_id));
diesel::joinable!(devices -> products (product_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(grants -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    products,
    models,
    channels,
    delivery_methods,
    delivery_procedures,
    firmware,
    firmware_channels,
    devices,
    users,
    api_tokens,
    grants,
);
