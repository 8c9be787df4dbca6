-- variant: by_conversation
-- breaks: foreign_key_reference_to_distributed
-- object: users.fk_users_pinned_conversation_id_conversations
-- A user's pinned conversation: users is a reference table (a copy on every node), conversations is
-- distributed; Citus refuses a foreign key from the first into the second.
ALTER TABLE users ADD COLUMN pinned_conversation_id bigint
    CONSTRAINT fk_users_pinned_conversation_id_conversations REFERENCES conversations (id);
