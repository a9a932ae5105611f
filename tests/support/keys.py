"""The secrets of the test settings (at least 32 bytes, as the settings demand)."""

SECRET = "test-bridge-secret-0123456789abcdef0123"
KEY = "test-secret-key-0123456789abcdef0123456789"
