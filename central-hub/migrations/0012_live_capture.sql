-- Issue 17: a session may take check-in photos only from the desk's live camera, not from uploaded files.
ALTER TABLE exam_sessions ADD COLUMN live_capture_required BIGINT NOT NULL DEFAULT 0;
