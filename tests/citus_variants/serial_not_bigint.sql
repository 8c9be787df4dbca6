-- variant: by_conversation
-- breaks: sequence_not_bigint
-- object: messages.seq
-- A 32-bit serial on a distributed table.
ALTER TABLE messages ADD COLUMN seq serial;
