-- Token refresh and login validity (issue 3).
--
-- `reauth_reason`: set when the account's login can no longer be refreshed (the refresh token
-- expired, was reused or was revoked, or the upstream rejected a freshly refreshed token); the
-- account is out of rotation until new credentials are imported or logged in, which clear it.
-- `last_refresh_error`: the last failed refresh attempt, for the admin view (cleared by a success).
ALTER TABLE accounts ADD COLUMN reauth_reason TEXT;
ALTER TABLE accounts ADD COLUMN last_refresh_error TEXT;
ALTER TABLE accounts ADD COLUMN last_refresh_error_at INTEGER;
