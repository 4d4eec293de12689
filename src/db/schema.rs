//! One schema for both backends (SQLite and PostgreSQL). Only types both share:
//! ids are UUID text, JSON is text, times are UTC `Timestamp`s.

diesel::table! {
    products (id) {
        id -> Text,
        tid -> Text,
        name -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        ddi_target_token_auth -> Bool,
        ddi_gateway_token_auth -> Bool,
        ddi_polling_secs -> Integer,
        ddi_confirmation_required -> Bool,
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
        target_token_hash -> Nullable<Text>,
        attributes_requested -> Bool,
        auto_confirm -> Nullable<Text>,
        installed_session_id -> Nullable<Text>,
        // DMF (migration 000005)
        dmf_reply_to -> Nullable<Text>,
        target_token_sealed -> Nullable<Text>,
        age_recipient -> Nullable<Text>,
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

diesel::table! {
    counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        number -> BigInt,
        state -> Text,
        creator_id -> Text,
        product_id -> Text,
        model_id -> Text,
        channel_id -> Nullable<Text>,
        device_id -> Nullable<Text>,
        procedure_id -> Text,
        current_firmware_id -> Nullable<Text>,
        current_version -> Nullable<Text>,
        target_firmware_id -> Nullable<Text>,
        steps -> Text,
        confirm -> Bool,
        timeouts -> Text,
        payload -> Nullable<Text>,
        artifact_key -> Nullable<Text>,
        artifact_sha256 -> Nullable<Text>,
        fail_reason -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        expired_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        action_type -> Nullable<Text>,
        maintenance_start -> Nullable<Timestamp>,
        maintenance_end -> Nullable<Timestamp>,
        cancel_requested_at -> Nullable<Timestamp>,
        consent_required -> Bool,
        consented_at -> Nullable<Timestamp>,
        // migration 000008
        bytes_served -> BigInt,
    }
}

diesel::table! {
    session_events (id) {
        id -> Text,
        session_id -> Text,
        at -> Timestamp,
        kind -> Text,
        from_state -> Nullable<Text>,
        to_state -> Nullable<Text>,
        message -> Nullable<Text>,
        // migration 000008
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        session_id -> Nullable<Text>,
        payload -> Text,
        run_at -> Timestamp,
        attempts -> Integer,
        max_attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    artifacts (cache_key) {
        cache_key -> Text,
        object_key -> Text,
        size -> BigInt,
        sha256 -> Text,
        sha1 -> Text,
        md5 -> Text,
        extras -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    object_checks (object_key) {
        object_key -> Text,
        size -> BigInt,
        sha256 -> Text,
        checked_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        quarantined_at -> Nullable<Timestamp>,
        found_size -> Nullable<BigInt>,
        found_sha256 -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (creator_id));
diesel::joinable!(session_events -> sessions (session_id));
diesel::joinable!(jobs -> sessions (session_id));

// The admin web UI (migration 000007).
diesel::table! {
    user_passwords (user_id) {
        user_id -> Text,
        hash -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    web_sessions (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    sign_in_failures (subject) {
        subject -> Text,
        failures -> Integer,
        last_failure_at -> Timestamp,
        blocked_until -> Nullable<Timestamp>,
    }
}

diesel::joinable!(user_passwords -> users (user_id));
diesel::joinable!(web_sessions -> users (user_id));

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
    counters,
    sessions,
    session_events,
    jobs,
    artifacts,
    server_secrets,
    object_checks,
    user_passwords,
    web_sessions,
    sign_in_failures,
);

diesel::table! {
    signing_keys (id) {
        id -> Text,
        name -> Text,
        key_id -> Text,
        public_key -> Text,
        secret_sealed -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    output_claims (cache_key) {
        cache_key -> Text,
        holder -> Text,
        expires_at -> Timestamp,
    }
}
