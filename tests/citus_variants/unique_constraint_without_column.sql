-- variant: by_conversation
-- breaks: unique_without_distribution_column
-- object: conversations.uq_conversations_user_id_title
-- A title unique per user: conversations are distributed by id, so no shard can enforce it.
ALTER TABLE conversations ADD CONSTRAINT uq_conversations_user_id_title UNIQUE (user_id, title);
