-- A small chat history with one whale conversation, written through the canonical schema (its
-- triggers and keys in force): 200 users, 2000 conversations, 24000 ordinary messages and one
-- conversation of 6000 (the largest, as the ci profile's whales are). Rows arrive without per-row
-- triggers (replica mode); updated_at is then set as the trigger would have set it.
SET session_replication_role = replica;
INSERT INTO users (email, display_name)
SELECT 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, 200) AS i;
INSERT INTO conversations (user_id, title, created_at, updated_at)
SELECT 1 + i % 200, 'conversation ' || i, timestamptz '2026-01-01' + i * interval '1 minute',
       timestamptz '2026-01-01' + i * interval '1 minute'
FROM generate_series(1, 2000) AS i;
INSERT INTO messages (conversation_id, user_id, role, content, created_at)
SELECT c, 1 + c % 200, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END, 'message ' || n,
       timestamptz '2026-02-01' + (c * 12 + n) * interval '1 second'
FROM generate_series(1, 2000) AS c, generate_series(1, 12) AS n;
INSERT INTO messages (conversation_id, user_id, role, content, created_at)
SELECT 7, 1 + 7 % 200, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END, 'whale message ' || n,
       timestamptz '2026-03-01' + n * interval '1 second'
FROM generate_series(1, 6000) AS n;
SET session_replication_role = origin;
UPDATE conversations c SET updated_at = m.latest
FROM (SELECT conversation_id, max(created_at) AS latest FROM messages GROUP BY 1) m
WHERE m.conversation_id = c.id AND m.latest > c.updated_at;
ANALYZE;
