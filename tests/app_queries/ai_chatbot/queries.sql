-- The chat page and the sidebar of an AI chat app on its own names ("Message_v2", "chatId", "createdAt",
-- json parts); chatbench.toml maps them to the roles. Each defect comes with its fixed twin (NAME_fixed).

-- name: messages_of_chat
-- Opening a chat as the template does: every message of the conversation in one response.
SELECT id, "chatId", role, parts, attachments, "createdAt" FROM "Message_v2"
 WHERE "chatId" = :conversation_id
 ORDER BY "createdAt" ASC;

-- name: messages_of_chat_fixed
-- The latest page, newest first; older pages follow with the keyset below.
SELECT id, "chatId", role, parts, attachments, "createdAt" FROM "Message_v2"
 WHERE "chatId" = :conversation_id
 ORDER BY "createdAt" DESC, id DESC LIMIT :limit;

-- name: history_before
-- Scrolling up with a cursor on "createdAt" alone: messages sharing the cursor's timestamp fall between pages.
SELECT id, role, parts, "createdAt" FROM "Message_v2"
 WHERE "chatId" = :conversation_id AND "createdAt" < :before_created_at
 ORDER BY "createdAt" DESC LIMIT :limit;

-- name: history_before_fixed
SELECT id, role, parts, "createdAt" FROM "Message_v2"
 WHERE "chatId" = :conversation_id AND ("createdAt", id) < (:before_created_at, :before_id)
 ORDER BY "createdAt" DESC, id DESC LIMIT :limit;

-- name: chats_of_user
-- The sidebar: a user's latest chats.
SELECT id, title, "createdAt", visibility FROM "Chat"
 WHERE "userId" = :user_id
 ORDER BY "createdAt" DESC, id DESC LIMIT :limit;

-- name: votes_of_chat
-- The thumbs shown beside a chat's messages (the key of "Vote_v2" leads with "chatId").
SELECT "messageId", "isUpvoted" FROM "Vote_v2" WHERE "chatId" = :conversation_id;

-- name: save_message
-- Saving the user's turn as the chat route does: one row, its json parts built on the server.
INSERT INTO "Message_v2" (id, "chatId", role, parts, attachments, "createdAt")
VALUES (gen_random_uuid(), :conversation_id, 'user',
        json_build_array(json_build_object('type', 'text', 'text', 'one more question')), '[]'::json, now());
