-- variant: by_user
-- breaks: distribution_column_missing
-- object: messages.user_id
-- messages without the denormalised owner: it cannot be distributed by user.
ALTER TABLE messages DROP COLUMN user_id;
