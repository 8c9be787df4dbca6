-- messages range-partitioned by month with text keys (ULID-like strings the application generates), a
-- product whose history outgrew one table. Built from the schema-variant corpus' monthly partitions.
-- messages range-partitioned by created_at, one partition per month. Every profile's history spans
-- 2024-01-01 plus 365 days (loadgen/profiles/*.toml [time]), so January to December 2024 hold the seeded
-- rows; the DEFAULT partition takes anything else (the behaviour probes' now(), a later spec). PostgreSQL
-- requires the partition key in the primary key: PRIMARY KEY (id, created_at) gives up the uniqueness of
-- id alone (ids stay unique because the identity generates them). Everything else is canonical: the
-- indexes and the foreign keys are declared on the parent and exist on every partition.
CREATE FUNCTION chatbench_touch_conversation_on_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations
       SET updated_at = GREATEST(updated_at, NEW.created_at)
     WHERE id = NEW.conversation_id;
    RETURN NULL;
END;
$$;

CREATE FUNCTION chatbench_touch_conversation_on_title() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.title IS DISTINCT FROM OLD.title THEN
        NEW.updated_at := GREATEST(OLD.updated_at, now());
    END IF;
    RETURN NEW;
END;
$$;

CREATE TABLE users (
    id text DEFAULT md5(random()::text),
    email varchar(320) NOT NULL,
    display_name varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT uq_users_email UNIQUE (email)
);

CREATE TABLE conversations (
    id text DEFAULT md5(random()::text),
    user_id text NOT NULL,
    title varchar(255),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_conversations PRIMARY KEY (id),
    CONSTRAINT ck_conversations_updated_after_created CHECK (updated_at >= created_at),
    CONSTRAINT fk_conversations_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_conversations_user_id_updated_at_id ON conversations (user_id, updated_at DESC, id DESC);
CREATE TRIGGER trg_conversations_touch_on_title BEFORE UPDATE OF title ON conversations
    FOR EACH ROW EXECUTE FUNCTION chatbench_touch_conversation_on_title();

CREATE TABLE messages (
    id text DEFAULT md5(random()::text),
    conversation_id text NOT NULL,
    user_id text NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_messages PRIMARY KEY (id, created_at),
    CONSTRAINT ck_messages_role_allowed CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    CONSTRAINT fk_messages_conversation_id_conversations FOREIGN KEY (conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT fk_messages_user_id_users FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) PARTITION BY RANGE (created_at);
CREATE TABLE messages_2024_01 PARTITION OF messages FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-02-01 00:00+00');
CREATE TABLE messages_2024_02 PARTITION OF messages FOR VALUES FROM ('2024-02-01 00:00+00') TO ('2024-03-01 00:00+00');
CREATE TABLE messages_2024_03 PARTITION OF messages FOR VALUES FROM ('2024-03-01 00:00+00') TO ('2024-04-01 00:00+00');
CREATE TABLE messages_2024_04 PARTITION OF messages FOR VALUES FROM ('2024-04-01 00:00+00') TO ('2024-05-01 00:00+00');
CREATE TABLE messages_2024_05 PARTITION OF messages FOR VALUES FROM ('2024-05-01 00:00+00') TO ('2024-06-01 00:00+00');
CREATE TABLE messages_2024_06 PARTITION OF messages FOR VALUES FROM ('2024-06-01 00:00+00') TO ('2024-07-01 00:00+00');
CREATE TABLE messages_2024_07 PARTITION OF messages FOR VALUES FROM ('2024-07-01 00:00+00') TO ('2024-08-01 00:00+00');
CREATE TABLE messages_2024_08 PARTITION OF messages FOR VALUES FROM ('2024-08-01 00:00+00') TO ('2024-09-01 00:00+00');
CREATE TABLE messages_2024_09 PARTITION OF messages FOR VALUES FROM ('2024-09-01 00:00+00') TO ('2024-10-01 00:00+00');
CREATE TABLE messages_2024_10 PARTITION OF messages FOR VALUES FROM ('2024-10-01 00:00+00') TO ('2024-11-01 00:00+00');
CREATE TABLE messages_2024_11 PARTITION OF messages FOR VALUES FROM ('2024-11-01 00:00+00') TO ('2024-12-01 00:00+00');
CREATE TABLE messages_2024_12 PARTITION OF messages FOR VALUES FROM ('2024-12-01 00:00+00') TO ('2025-01-01 00:00+00');
CREATE TABLE messages_default PARTITION OF messages DEFAULT;
CREATE INDEX ix_messages_conversation_id_created_at_id ON messages (conversation_id, created_at, id);
CREATE INDEX ix_messages_user_id ON messages (user_id);
CREATE TRIGGER trg_messages_touch_conversation AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION chatbench_touch_conversation_on_message();
