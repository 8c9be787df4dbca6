-- A tenant's chat screen and sidebar, keyed by bigint; each defect has its fixed twin (NAME_fixed).

-- name: history_numeric
-- The ORM passes the id as a Decimal: the column is cast to numeric, the index on it is useless.
SELECT id, created_at, content, raw FROM messages
 WHERE conversation_id = :conversation_id::numeric AND tenant_id = 1
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: history_numeric_fixed
SELECT id, created_at, content, raw FROM messages
 WHERE conversation_id = :conversation_id AND tenant_id = 1
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: sidebar_all
-- The sidebar fetched whole: a heavy user's hundreds of conversations in one response.
SELECT id, title, updated_at FROM conversations
 WHERE user_id = :user_id AND tenant_id = 1
 ORDER BY updated_at DESC, id DESC;

-- name: sidebar_all_fixed
SELECT id, title, updated_at FROM conversations
 WHERE user_id = :user_id AND tenant_id = 1
 ORDER BY updated_at DESC, id DESC LIMIT :limit;

-- name: sync_inclusive
-- Sync forward with an inclusive cursor on created_at alone: the boundary rows come again on every page.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND created_at >= :after_created_at
 ORDER BY created_at LIMIT :limit;

-- name: sync_inclusive_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND (created_at, id) > (:after_created_at, :after_id)
 ORDER BY created_at, id LIMIT :limit;

-- name: tokens_of_user
-- The usage page: tokens over all of a user's history, summed on every visit.
SELECT sum(token_count) FROM messages WHERE user_id = :user_id;

-- name: tokens_of_user_fixed
-- The tokens of the last page's worth of one conversation.
-- scenarios: whale
SELECT sum(token_count) FROM messages WHERE conversation_id = :conversation_id AND user_id = :user_id
   AND created_at > :since;

-- name: reactions_page
-- A page of messages with their reactions (reactions(message_id) is indexed).
SELECT m.id, m.created_at, r.emoji FROM messages m
  LEFT JOIN reactions r ON r.message_id = m.id
 WHERE m.conversation_id = :conversation_id
 ORDER BY m.created_at DESC, m.id DESC LIMIT :limit;

-- name: rename_chat
-- Renaming a chat: a write, rolled back.
UPDATE conversations SET title = :title WHERE id = :conversation_id AND user_id = :user_id RETURNING id;
