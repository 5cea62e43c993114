"""Models of the banking app."""
