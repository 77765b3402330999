"""Cross-cutting web plumbing: error rendering, security headers, templates."""
