-- variant: by_conversation
-- breaks: unique_without_distribution_column
-- object: messages.ux_messages_id
-- A unique index (not a constraint) on the message id alone.
CREATE UNIQUE INDEX ux_messages_id ON messages (id);
