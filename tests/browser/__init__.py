"""Tests that render pages in headless Debian chromium (playwright, no downloaded browser)."""
