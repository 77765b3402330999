"""The customer portal: server-rendered pages that work without JavaScript."""
