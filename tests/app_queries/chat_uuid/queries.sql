-- The chat screen, the sidebar and the feedback view of an application keyed by uuid.
-- Each defective query comes with its fixed twin (NAME_fixed).

-- name: feed_no_index
-- Everything a user wrote lately, across conversations: no index leads with messages.user_id.
SELECT id, conversation_id, created_at, content FROM messages
 WHERE user_id = :user_id AND deleted_at IS NULL
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: feed_no_index_fixed
SELECT id, conversation_id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND user_id = :user_id AND deleted_at IS NULL
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: history_no_limit
-- Opening a conversation: the whole history in one response.
SELECT id, created_at, role, content, parts FROM messages
 WHERE conversation_id = :conversation_id AND deleted_at IS NULL
 ORDER BY created_at DESC, id DESC;

-- name: history_no_limit_fixed
SELECT id, created_at, role, content, parts FROM messages
 WHERE conversation_id = :conversation_id AND deleted_at IS NULL
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: history_before_ts
-- Scrolling up with a cursor on created_at alone: rows sharing the cursor's timestamp fall between pages.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND created_at < :before_created_at
 ORDER BY created_at DESC LIMIT :limit;

-- name: history_before_ts_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND (created_at, id) < (:before_created_at, :before_id)
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: history_offset
-- Scrolling up by OFFSET: every skipped row is read.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id
 ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: history_offset_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND (created_at, id) < (:before_created_at, :before_id)
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: sync_by_day
-- Sync after reconnect, written with a function on the indexed column.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND date_trunc('milliseconds', created_at) > :since
 ORDER BY created_at, id LIMIT :limit;

-- name: sync_by_day_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND created_at > :since
 ORDER BY created_at, id LIMIT :limit;

-- name: mine_or_in_conversation
-- An OR across two columns.
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id OR user_id = :user_id
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: mine_or_in_conversation_fixed
SELECT id, created_at, content FROM messages
 WHERE conversation_id = :conversation_id AND user_id = :user_id
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: page_with_feedback
-- A page of messages with their feedback: message_feedback has no index on message_id.
SELECT m.id, m.created_at, f.rating FROM messages m
  LEFT JOIN message_feedback f ON f.message_id = m.id
 WHERE m.conversation_id = :conversation_id
 ORDER BY m.created_at DESC, m.id DESC LIMIT :limit;

-- name: page_with_feedback_fixed
-- The same page with its attachments: attachments(message_id) is indexed.
SELECT m.id, m.created_at, a.url FROM messages m
  LEFT JOIN attachments a ON a.message_id = m.id
 WHERE m.conversation_id = :conversation_id
 ORDER BY m.created_at DESC, m.id DESC LIMIT :limit;

-- name: count_user_messages
-- The profile page's "messages sent": a count over all of a user's history.
SELECT count(*) FROM messages WHERE user_id = :user_id;

-- name: count_user_messages_fixed
SELECT message_count FROM conversations WHERE id = :conversation_id AND user_id = :user_id;

-- name: sidebar_by_title
-- The sidebar sorted by title: no index delivers it, every conversation of the user is sorted.
SELECT id, title, updated_at FROM conversations
 WHERE user_id = :user_id AND NOT archived
 ORDER BY title LIMIT :limit;

-- name: sidebar_by_title_fixed
SELECT id, title, updated_at FROM conversations
 WHERE user_id = :user_id AND NOT archived
 ORDER BY updated_at DESC, id DESC LIMIT :limit;

-- name: sidebar_next
-- The sidebar scrolled: keyset on (updated_at, id).
SELECT id, title, updated_at FROM conversations
 WHERE user_id = :user_id AND (updated_at, id) < (:before_updated_at, :before_id)
 ORDER BY updated_at DESC, id DESC LIMIT :limit;

-- name: send_message
-- Sending a message: runs inside a rolled-back transaction.
INSERT INTO messages (conversation_id, user_id, role, content)
SELECT id, user_id, :role, :content FROM conversations WHERE id = :conversation_id AND user_id = :user_id
RETURNING id, created_at;
