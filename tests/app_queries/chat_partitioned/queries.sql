-- History pages over monthly partitions, keyed by text.

-- name: history_latest
-- Opening a conversation: the newest page.
SELECT id, created_at, role, content FROM messages
 WHERE conversation_id = :conversation_id AND user_id = :user_id
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: history_offset
-- Scrolling up by OFFSET: every skipped row is read, in every month it spans.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id
 ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: history_offset_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND (created_at, id) < (:before_created_at, :before_id)
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: history_lower_role
-- Filtering on lower(role) and sorting by it: no index delivers the order.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND lower(role) = 'assistant'
 ORDER BY lower(role), created_at DESC LIMIT :limit;

-- name: history_lower_role_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND role = 'assistant'
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: sidebar_page
SELECT id, title, updated_at FROM conversations
 WHERE user_id = :user_id AND (updated_at, id) < (:before_updated_at, :before_id)
 ORDER BY updated_at DESC, id DESC LIMIT :limit;

-- name: append_message
-- Sending a message into the current month's partition: a write, rolled back.
INSERT INTO messages (conversation_id, user_id, role, content)
SELECT id, user_id, :role, :content FROM conversations WHERE id = :conversation_id AND user_id = :user_id
RETURNING id, created_at;
