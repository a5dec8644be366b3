"""MicroPython snippets validate runs on the node (read as text, never imported on the host)."""
