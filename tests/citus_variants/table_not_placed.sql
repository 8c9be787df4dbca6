-- variant: by_conversation
-- breaks: table_not_placed
-- object: attachments
-- A table the distribution variant does not place.
CREATE TABLE attachments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, message_id bigint NOT NULL,
                          url text NOT NULL);
