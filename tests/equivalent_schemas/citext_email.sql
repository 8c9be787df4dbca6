-- An extension's type in the schema: the email is citext (case-insensitive text, the citext extension)
-- with a length CHECK, otherwise as varchar_text_bigserial.sql. The behaviour probes run on a schema-only
-- copy, which must carry the extension: without it the users table does not restore and every probe on it
-- fails.
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email citext NOT NULL CONSTRAINT users_email_len CHECK (char_length(email) <= 320),
    display_name text NOT NULL CHECK (length(display_name) <= 255),
    created_at timestamp with time zone NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_uidx ON users (email);

CREATE TABLE conversations (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text CHECK (char_length(title) <= 255),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CHECK (NOT (updated_at < created_at))
);
CREATE INDEX conversations_by_user_recent ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role varchar(16) NOT NULL CHECK (role IN ('system', 'user', 'tool', 'assistant')),
    content text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now()
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_by_user ON messages (user_id);

CREATE FUNCTION touch_parent_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET updated_at = NEW.created_at
     WHERE id = NEW.conversation_id AND updated_at < NEW.created_at;
    RETURN NEW;
END
$$;
CREATE FUNCTION touch_renamed_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.title IS DISTINCT FROM NEW.title AND NEW.updated_at < now() THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER after_message_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE PROCEDURE touch_parent_conversation();
CREATE TRIGGER before_conversation_update BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE PROCEDURE touch_renamed_conversation();
