"""Reports people look at: self-contained HTML pages with inline SVG plots, no scripts."""
