-- An application's chat schema as its own migrations build it: uuid keys, a jsonb content document
-- beside the text, soft delete, a denormalised message count, feedback and attachment tables.
-- Deliberately missing: an index on messages.user_id, and one on message_feedback.message_id.
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(320) NOT NULL UNIQUE,
    display_name varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title varchar(255),
    message_count integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    archived boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (updated_at >= created_at)
);
CREATE INDEX ix_conversations_user_id_updated_at_id ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content text NOT NULL,
    parts jsonb,
    model varchar(64),
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_messages_conversation_id_created_at_id ON messages (conversation_id, created_at, id);

CREATE TABLE attachments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    url text NOT NULL,
    bytes integer NOT NULL CHECK (bytes >= 0)
);
CREATE INDEX ix_attachments_message_id ON attachments (message_id);

CREATE TABLE message_feedback (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    rating text NOT NULL CHECK (rating IN ('up', 'down')),
    created_at timestamptz NOT NULL DEFAULT now()
);
