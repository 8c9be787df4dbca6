-- variant: by_user
-- breaks: foreign_key_without_distribution_column
-- object: messages.fk_messages_conversation_id_conversations
-- The canonical schema judged by user: messages -> conversations on conversation_id alone, which does
-- not map messages.user_id to conversations.user_id (the key the two tables are co-located on).
SELECT 1;
