// One schema for both engines: only portable column types.

diesel::table! {
    app_settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    sites (id) {
        id -> Text,
        code -> Text,
        name -> Text,
        timezone -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        display_name -> Text,
        role -> Text,
        phone -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        on_duty -> Bool,
    }
}

diesel::table! {
    user_sites (user_id, site_id) {
        user_id -> Text,
        site_id -> Text,
    }
}

diesel::table! {
    user_trades (user_id, trade) {
        user_id -> Text,
        trade -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        session_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
        successor_id -> Nullable<Text>,
        successor_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Text,
        throttle_key -> Text,
        at -> Timestamp,
    }
}

diesel::joinable!(user_sites -> users (user_id));
diesel::joinable!(user_sites -> sites (site_id));
diesel::joinable!(user_trades -> users (user_id));
diesel::joinable!(devices -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));

diesel::table! {
    tickets (id) {
        id -> Text,
        site_id -> Text,
        number -> Text,
        area -> Text,
        location -> Text,
        category -> Text,
        urgency -> Text,
        paid -> Bool,
        description -> Text,
        reporter_name -> Text,
        reporter_phone -> Nullable<Text>,
        appointment_at -> Nullable<Timestamp>,
        resident_supplies_parts -> Bool,
        channel -> Text,
        requested_technician_id -> Nullable<Text>,
        status -> Text,
        assignee_id -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        pooled_at -> Nullable<Timestamp>,
        claimed_at -> Nullable<Timestamp>,
        arrived_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        cancelled_at -> Nullable<Timestamp>,
        cancel_reason -> Nullable<Text>,
        last_activity_at -> Timestamp,
        version -> BigInt,
        rework_of -> Nullable<Text>,
        arrival_device_time -> Nullable<Timestamp>,
        arrival_on_time -> Nullable<Bool>,
        arrival_verified_via -> Nullable<Text>,
        arrival_lat -> Nullable<Double>,
        arrival_lng -> Nullable<Double>,
        phone_verified_at -> Nullable<Timestamp>,
        phone_verified_by -> Nullable<Text>,
        hold_reason -> Nullable<Text>,
        hold_note -> Nullable<Text>,
        resume_at -> Nullable<Timestamp>,
        result -> Nullable<Text>,
        resident_rating -> Nullable<BigInt>,
        fee_collected_cents -> Nullable<BigInt>,
        signature_png -> Nullable<Binary>,
        create_key -> Nullable<Text>,
        arrival_clock_at -> Nullable<Timestamp>,
        location_key -> Nullable<Text>,
        search_text -> Text,
    }
}

diesel::table! {
    ticket_counters (site_id, day) {
        site_id -> Text,
        day -> Text,
        last_value -> BigInt,
    }
}

diesel::table! {
    stream_tickets (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        user_id -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ticket_events (seq) {
        seq -> BigInt,
        id -> Text,
        ticket_id -> Text,
        site_id -> Text,
        event_type -> Text,
        actor_id -> Nullable<Text>,
        at -> Timestamp,
        from_status -> Nullable<Text>,
        to_status -> Nullable<Text>,
        data -> Text,
        tx -> BigInt,
    }
}

diesel::table! {
    escalations (id) {
        id -> Text,
        ticket_id -> Text,
        site_id -> Text,
        kind -> Text,
        dedupe_key -> Text,
        created_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        acknowledged_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<Text>,
        ack_note -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (user_id, idem_key) {
        user_id -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status_code -> Nullable<BigInt>,
        content_type -> Nullable<Text>,
        body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    resident_codes (ticket_id, purpose) {
        ticket_id -> Text,
        purpose -> Text,
        code_hash -> Text,
        failed_attempts -> BigInt,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sms_outbox (id) {
        id -> Text,
        ticket_id -> Nullable<Text>,
        to_phone -> Text,
        template -> Text,
        params -> Text,
        body -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        lease_token -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        provider -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        provider_status -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        failed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        user_id -> Text,
        provider -> Text,
        token -> Text,
        platform -> Text,
        app_version -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    push_outbox (id) {
        id -> Text,
        ticket_id -> Text,
        user_id -> Text,
        device_id -> Text,
        kind -> Text,
        priority -> Text,
        collapse_key -> Text,
        params -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        lease_token -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        provider -> Text,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        failed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    material_catalogue (id) {
        id -> Text,
        site_id -> Text,
        name -> Text,
        spec -> Nullable<Text>,
        model -> Nullable<Text>,
        unit -> Text,
        default_price_cents -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    material_lines (id) {
        id -> Text,
        ticket_id -> Text,
        catalogue_item_id -> Nullable<Text>,
        name -> Text,
        spec -> Nullable<Text>,
        model -> Nullable<Text>,
        quantity -> Text,
        quantity_milli -> BigInt,
        unit -> Text,
        unit_price_cents -> BigInt,
        supplied_by -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    quotes (ticket_id) {
        ticket_id -> Text,
        amount_cents -> BigInt,
        note -> Nullable<Text>,
        status -> Text,
        proposed_by -> Text,
        proposed_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<Text>,
        decided_via -> Nullable<Text>,
        decision_note -> Nullable<Text>,
        covers -> Text,
        accepted_total_cents -> Nullable<BigInt>,
    }
}

diesel::table! {
    callbacks (id) {
        id -> Text,
        ticket_id -> Text,
        made_by -> Text,
        made_at -> Timestamp,
        reached -> Bool,
        satisfaction -> Nullable<BigInt>,
        comment -> Nullable<Text>,
    }
}

diesel::table! {
    sync_clients (client_id) {
        client_id -> Text,
        user_id -> Text,
        last_op_id -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_ops (client_id, op_id) {
        client_id -> Text,
        op_id -> BigInt,
        user_id -> Text,
        ticket_id -> Nullable<Text>,
        site_id -> Nullable<Text>,
        name -> Text,
        args -> Text,
        device_time -> Nullable<Timestamp>,
        received_at -> Timestamp,
        status -> Text,
        code -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    ticket_notes (id) {
        id -> Text,
        ticket_id -> Text,
        author_id -> Text,
        body -> Text,
        created_at -> Timestamp,
        device_time -> Nullable<Timestamp>,
    }
}

diesel::table! {
    handovers (id) {
        id -> Text,
        site_id -> Text,
        shift -> Text,
        note -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        acknowledged_by -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamp>,
        notes_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    handover_notes (handover_id, note_id) {
        handover_id -> Text,
        note_id -> Text,
        ticket_id -> Text,
    }
}

diesel::table! {
    handover_tickets (handover_id, ticket_id) {
        handover_id -> Text,
        ticket_id -> Text,
        number -> Text,
        status -> Text,
        assignee_id -> Nullable<Text>,
        open_escalations -> BigInt,
    }
}

diesel::table! {
    user_departments (user_id, department) {
        user_id -> Text,
        department -> Text,
    }
}

diesel::table! {
    matters (id) {
        id -> Text,
        site_id -> Text,
        number -> Text,
        kind -> Text,
        department -> Text,
        status -> Text,
        description -> Text,
        reporter_name -> Text,
        reporter_phone -> Nullable<Text>,
        location -> Nullable<Text>,
        channel -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        reply -> Nullable<Text>,
        replied_by -> Nullable<Text>,
        replied_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    matter_callbacks (id) {
        id -> Text,
        matter_id -> Text,
        made_by -> Text,
        made_at -> Timestamp,
        reached -> Bool,
        satisfaction -> Nullable<BigInt>,
        comment -> Nullable<Text>,
    }
}

diesel::table! {
    matter_escalations (id) {
        id -> Text,
        matter_id -> Text,
        site_id -> Text,
        kind -> Text,
        dedupe_key -> Text,
        created_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        acknowledged_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<Text>,
        ack_note -> Nullable<Text>,
    }
}

diesel::joinable!(tickets -> sites (site_id));
diesel::joinable!(handover_tickets -> handovers (handover_id));
diesel::joinable!(handover_notes -> ticket_notes (note_id));
diesel::joinable!(ticket_events -> tickets (ticket_id));
diesel::joinable!(escalations -> tickets (ticket_id));
diesel::joinable!(matter_escalations -> matters (matter_id));
diesel::joinable!(matter_callbacks -> matters (matter_id));
diesel::allow_tables_to_appear_in_same_query!(
    app_settings,
    sessions,
    refresh_tokens,
    login_failures,
    tickets,
    ticket_counters,
    ticket_events,
    escalations,
    idempotency_keys,
    resident_codes,
    sms_outbox,
    devices,
    push_outbox,
    stream_tickets,
    material_catalogue,
    material_lines,
    quotes,
    callbacks,
    sync_clients,
    sync_ops,
    ticket_notes,
    handover_notes,
    handovers,
    handover_tickets,
    sites,
    users,
    user_sites,
    user_trades,
    user_departments,
    matters,
    matter_callbacks,
    matter_escalations,
);
