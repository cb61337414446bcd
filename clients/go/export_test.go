package fieldsync

// SpoilRefreshToken replaces the client's refresh token with one the
// server will refuse, and its access token with an expired one.
func (c *Client) SpoilRefreshToken() {
	c.api.mu.Lock()
	defer c.api.mu.Unlock()
	c.api.refresh = "not-a-refresh-token"
	c.api.expires = c.api.now().Add(-1)
}
