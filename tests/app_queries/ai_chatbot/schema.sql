-- An AI chat application's schema as its Drizzle migrations build it (the shape of the open-source
-- Next.js AI chatbot template): PascalCase tables, camelCase columns, uuid keys, timestamps without time
-- zone, the message content a json array of parts, foreign keys without cascades, and the tables the app
-- keeps beside the history (votes, documents and their suggestions, resumable streams).
-- Its names are not chatbench's: chatbench.toml beside this file maps them to the roles.
-- The team's own later migration added the two history indexes; everything else is as generated.
CREATE TABLE "User" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "email" varchar(64) NOT NULL,
    "password" varchar(64)
);

CREATE TABLE "Chat" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "createdAt" timestamp NOT NULL,
    "title" text NOT NULL,
    "userId" uuid NOT NULL,
    "visibility" varchar DEFAULT 'private' NOT NULL,
    CONSTRAINT "Chat_visibility_check" CHECK ("visibility" IN ('public', 'private'))
);

CREATE TABLE "Message_v2" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "chatId" uuid NOT NULL,
    "role" varchar NOT NULL,
    "parts" json NOT NULL,
    "attachments" json NOT NULL,
    "createdAt" timestamp NOT NULL
);

CREATE TABLE "Vote_v2" (
    "chatId" uuid NOT NULL,
    "messageId" uuid NOT NULL,
    "isUpvoted" boolean NOT NULL,
    CONSTRAINT "Vote_v2_chatId_messageId_pk" PRIMARY KEY ("chatId", "messageId")
);

CREATE TABLE "Document" (
    "id" uuid DEFAULT gen_random_uuid() NOT NULL,
    "createdAt" timestamp NOT NULL,
    "title" text NOT NULL,
    "content" text,
    "kind" varchar DEFAULT 'text' NOT NULL,
    "userId" uuid NOT NULL,
    CONSTRAINT "Document_id_createdAt_pk" PRIMARY KEY ("id", "createdAt"),
    CONSTRAINT "Document_kind_check" CHECK ("kind" IN ('text', 'code', 'image', 'sheet'))
);

CREATE TABLE "Suggestion" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "documentId" uuid NOT NULL,
    "documentCreatedAt" timestamp NOT NULL,
    "originalText" text NOT NULL,
    "suggestedText" text NOT NULL,
    "description" text,
    "isResolved" boolean DEFAULT false NOT NULL,
    "userId" uuid NOT NULL,
    "createdAt" timestamp NOT NULL
);

CREATE TABLE "Stream" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "chatId" uuid NOT NULL,
    "createdAt" timestamp NOT NULL
);

ALTER TABLE "Chat" ADD CONSTRAINT "Chat_userId_User_id_fk" FOREIGN KEY ("userId")
    REFERENCES "public"."User"("id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Message_v2" ADD CONSTRAINT "Message_v2_chatId_Chat_id_fk" FOREIGN KEY ("chatId")
    REFERENCES "public"."Chat"("id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Vote_v2" ADD CONSTRAINT "Vote_v2_chatId_Chat_id_fk" FOREIGN KEY ("chatId")
    REFERENCES "public"."Chat"("id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Vote_v2" ADD CONSTRAINT "Vote_v2_messageId_Message_v2_id_fk" FOREIGN KEY ("messageId")
    REFERENCES "public"."Message_v2"("id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Document" ADD CONSTRAINT "Document_userId_User_id_fk" FOREIGN KEY ("userId")
    REFERENCES "public"."User"("id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Suggestion" ADD CONSTRAINT "Suggestion_userId_User_id_fk" FOREIGN KEY ("userId")
    REFERENCES "public"."User"("id") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Suggestion" ADD CONSTRAINT "Suggestion_documentId_documentCreatedAt_Document_id_createdAt_fk"
    FOREIGN KEY ("documentId", "documentCreatedAt")
    REFERENCES "public"."Document"("id", "createdAt") ON DELETE no action ON UPDATE no action;
ALTER TABLE "Stream" ADD CONSTRAINT "Stream_chatId_Chat_id_fk" FOREIGN KEY ("chatId")
    REFERENCES "public"."Chat"("id") ON DELETE no action ON UPDATE no action;

-- The team's migration 0008: the chat screen and the sidebar, each read through an index.
CREATE INDEX "Message_v2_chatId_createdAt_id_idx" ON "Message_v2" ("chatId", "createdAt", "id");
CREATE INDEX "Chat_userId_createdAt_id_idx" ON "Chat" ("userId", "createdAt" DESC, "id" DESC);
